// Package tracectx carries W3C Trace Context (the traceparent header)
// through the geo router, the edges and their peers, so one request has
// one trace id in every hop's logs and answers, failover attempts
// included. It records no spans: the ids are for logs and for tracers
// downstream.
package tracectx

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
)

// Header is the W3C Trace Context request header.
const Header = "traceparent"

// Context is one hop's place in a trace: the trace, this hop's span (the
// parent of what it calls) and the trace flags (bit 0: sampled).
type Context struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// Len is the length of a version-00 traceparent value.
const Len = 55

// Parse reads a traceparent value: 00-<32 hex trace id>-<16 hex parent
// id>-<2 hex flags>, lower-case, ids not all zero. A later version is read
// by its first 55 characters when it continues with '-', as the
// specification asks. ok is false for anything else, and the caller
// starts a new trace.
func Parse(v []byte) (c Context, ok bool) {
	if len(v) < Len || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return c, false
	}
	var version [1]byte
	if !decode(version[:], v[0:2]) || version[0] == 0xff || version[0] == 0 && len(v) != Len || version[0] > 0 && len(v) > Len && v[Len] != '-' {
		return c, false
	}
	var flags [1]byte
	if !decode(c.TraceID[:], v[3:35]) || !decode(c.SpanID[:], v[36:52]) || !decode(flags[:], v[53:55]) {
		return c, false
	}
	if c.TraceID == ([16]byte{}) || c.SpanID == ([8]byte{}) {
		return c, false
	}
	c.Flags = flags[0]
	return c, true
}

// decode reads lower-case hex only, as the specification requires.
func decode(dst, src []byte) bool {
	for i := range dst {
		hi, lo := hexValue[src[2*i]], hexValue[src[2*i+1]]
		if hi|lo == 0xff {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// hexValue is each byte's value as a lower-case hex digit, 0xff for any
// other byte: one lookup per character on every hop's hot path
// (encoding/hex also takes upper case and costs three times as much).
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// New starts a trace; sampled sets the sampled flag.
func New(sampled bool) Context {
	var c Context
	binary.LittleEndian.PutUint64(c.TraceID[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(c.TraceID[8:], rand.Uint64()|1) // never all zero
	if sampled {
		c.Flags = 1
	}
	return c.Child()
}

// Child is a new span of the same trace, whose parent is c's span.
func (c Context) Child() Context {
	binary.LittleEndian.PutUint64(c.SpanID[:], rand.Uint64()|1<<63) // never zero
	return c
}

// Append writes c as a traceparent value.
func (c Context) Append(dst []byte) []byte {
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, c.TraceID[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, c.SpanID[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{c.Flags})
}

// TraceIDString is the trace id as logged: 32 lower-case hex digits.
func (c Context) TraceIDString() string { return hex.EncodeToString(c.TraceID[:]) }

// SpanIDString is the span id as logged: 16 lower-case hex digits.
func (c Context) SpanIDString() string { return hex.EncodeToString(c.SpanID[:]) }
