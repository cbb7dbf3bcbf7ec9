package edge

import (
	"bytes"
	"math"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// appendScore writes a probability with 4 decimals, like the CLI and
// strconv.AppendFloat(dst, f, 'f', 4, 32), in a fraction of its time: a
// probability is 0.dddd or 1.0000, written from an integer. f·10⁴ is
// exact in a float64 (24 bits times 14), and rounding it half to even
// gives AppendFloat's digits (TestAppendScore).
func appendScore(dst []byte, f float32) []byte {
	if !(f >= 0 && f <= 1) {
		return strconv.AppendFloat(dst, float64(f), 'f', 4, 32)
	}
	n := int(math.RoundToEven(float64(f) * 10000))
	return append(dst, byte('0'+n/10000), '.', byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

// appendField appends ,"key":"value" (or without the comma when first).
func appendField(dst []byte, key, value string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return httperr.AppendJSONString(dst, value)
}

// eachField calls f for every field of obj and stops at the first error,
// which it returns. A name that comes twice is a 400: JSON parsers differ
// on which of the two counts (RFC 8259 §4; I-JSON, RFC 7493, forbids it),
// so the edge guesses neither.
func eachField(obj *fastjson.Object, f func(key []byte, val *fastjson.Value) error) error {
	var err error
	var seen fieldNames
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if err != nil {
			return
		}
		if seen.add(key) {
			err = f(key, val)
		} else {
			err = httperr.New(fasthttp.StatusBadRequest, "field %q appears twice", key)
		}
	})
	return err
}

// fieldNames are the names of an object's fields seen so far. Every
// object the edge reads refuses an unknown name at once, so a few known
// ones are all it holds before it either ends or fails; past eight it
// keeps a map.
type fieldNames struct {
	first [8][]byte
	n     int
	more  map[string]struct{}
}

// add reports whether name is new, and remembers it.
func (s *fieldNames) add(name []byte) bool {
	for _, seen := range s.first[:s.n] {
		if string(seen) == string(name) {
			return false
		}
	}
	if s.n < len(s.first) {
		s.first[s.n] = name
		s.n++
		return true
	}
	if _, ok := s.more[string(name)]; ok {
		return false
	}
	if s.more == nil {
		s.more = map[string]struct{}{}
	}
	s.more[string(name)] = struct{}{}
	return true
}

// plainText returns the text of a /v1/predict body of the plain form
// {"text":"…"} whose string holds no escape, with JSON white space
// allowed between tokens, and true. Such bodies are nearly all of the
// traffic, and reading them needs no parser. Every other body (an escape,
// another field, "explain", anything malformed) returns false and goes to
// the full parser. For a body it accepts, it returns exactly the text the
// full parser would (FuzzPlainText).
func plainText(body []byte) ([]byte, bool) {
	b, ok := token(body, '{')
	if ok {
		b, ok = token(b, '"')
	}
	if !ok || len(b) < 5 || string(b[:5]) != `text"` {
		return nil, false
	}
	if b, ok = token(b[5:], ':'); ok {
		b, ok = token(b, '"')
	}
	if !ok {
		return nil, false
	}
	end := bytes.IndexByte(b, '"')
	if end < 0 || bytes.IndexByte(b[:end], '\\') >= 0 {
		return nil, false
	}
	text := b[:end]
	if b, ok = token(b[end+1:], '}'); !ok || len(skipSpace(b)) > 0 {
		return nil, false
	}
	return text, true
}

// token skips JSON white space and then the byte c, and returns what
// follows; false when c is not next.
func token(b []byte, c byte) ([]byte, bool) {
	b = skipSpace(b)
	if len(b) == 0 || b[0] != c {
		return nil, false
	}
	return b[1:], true
}

// skipSpace skips JSON's white space (RFC 8259 §2).
func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}
