package edge

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/valyala/fastjson"
)

// TestAppendScore compares appendScore with strconv.AppendFloat: on every
// 101st float32 from 0 to 1, on the only ones exactly halfway between two
// 4-decimal numbers (the odd multiples of 1/32), and on values no
// probability takes. (Every float32 in [0, 1] agrees too; that sweep takes
// half a minute.)
func TestAppendScore(t *testing.T) {
	var got, want []byte
	check := func(f float32) {
		got = appendScore(got[:0], f)
		want = strconv.AppendFloat(want[:0], float64(f), 'f', 4, 32)
		if string(got) != string(want) {
			t.Fatalf("appendScore(%v) = %s, want %s", f, got, want)
		}
	}
	for bits := uint32(0); bits <= math.Float32bits(1); bits += 101 {
		check(math.Float32frombits(bits))
	}
	for k := 1; k < 32; k += 2 {
		check(float32(k) / 32)
		check(math.Nextafter32(float32(k)/32, 0))
		check(math.Nextafter32(float32(k)/32, 1))
	}
	for _, f := range []float32{0, 1, -0.5, 1.5, 12345.678, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		check(f)
	}
}

// TestPlainText checks which bodies take the parser-free path: the plain
// form only, with the text the full parser would give.
func TestPlainText(t *testing.T) {
	for _, tc := range []struct {
		body string
		text string
		ok   bool
	}{
		{`{"text":"a fine film"}`, "a fine film", true},
		{" \t\r\n{ \"text\" :\n\"x\" } \n", "x", true},
		{`{"text":""}`, "", true},
		{`{"text":"caf\u00e9"}`, "", false},        // an escape
		{`{"text":"say \"hi\""}`, "", false},       // escaped quotes
		{`{"text":"a","explain":true}`, "", false}, // another field
		{`{"text":"a","text":"b"}`, "", false},     // a duplicate
		{`{"text":"a"}x`, "", false},               // a tail
		{`{"text":"a"`, "", false},
		{`{"text":"a}`, "", false},
		{`{"texts":"a"}`, "", false},
		{`{"text":1}`, "", false},
		{`{"tex":"a"}`, "", false},
		{`{"text\u0000":"a"}`, "", false},
		{"\v{\"text\":\"a\"}", "", false}, // not JSON white space
		{``, "", false},
	} {
		text, ok := plainText([]byte(tc.body))
		if ok != tc.ok || string(text) != tc.text {
			t.Errorf("plainText(%q) = %q, %v; want %q, %v", tc.body, text, ok, tc.text, tc.ok)
		}
	}
}

// FuzzPlainText: whatever the parser-free path accepts, the full parser
// accepts too, with the same text and no "explain".
func FuzzPlainText(f *testing.F) {
	for _, s := range []string{`{"text":"a fine film"}`, ` { "text" : "x" } `, `{"text":"a\"b"}`, `{"text":"\x00\xff"}`, `{"text":"a","explain":true}`} {
		f.Add([]byte(s))
	}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, body []byte) {
		text, ok := plainText(body)
		if !ok {
			return
		}
		full, explain, err := predictFields(&p, body, new(Inference))
		if err != nil || explain || !bytes.Equal(text, full) {
			t.Fatalf("%q: plain text %q, full parser %q, explain %v, %v", body, text, full, explain, err)
		}
	})
}

func TestFieldNamesPastTheArray(t *testing.T) {
	var s fieldNames
	for i := range 20 {
		if !s.add([]byte(fmt.Sprintf("f%d", i))) {
			t.Fatalf("f%d counted as seen", i)
		}
	}
	for _, name := range []string{"f3", "f15"} {
		if s.add([]byte(name)) {
			t.Errorf("%s, added before, counted as new", name)
		}
	}
}
