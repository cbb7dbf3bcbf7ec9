package tracectx

import (
	"strings"
	"testing"
)

// TestParse follows the W3C Trace Context rules: lower-case hex, no
// all-zero ids, version ff invalid, later versions read by their first 55
// characters.
func TestParse(t *testing.T) {
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for v, want := range map[string]bool{
		valid: true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00":        true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra":  false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":        false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":           false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01":        false,
		"":                      false,
		strings.Repeat("0", 55): false,
	} {
		c, ok := Parse([]byte(v))
		if ok != want {
			t.Errorf("Parse(%q) ok=%v, want %v", v, ok, want)
		}
		if ok && v == valid && (string(c.Append(nil)) != valid || c.TraceIDString() != "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Errorf("round trip: %s", c.Append(nil))
		}
	}
	n := New(true)
	child := n.Child()
	if _, ok := Parse(n.Append(nil)); !ok || child.TraceID != n.TraceID || child.SpanID == n.SpanID || n.Flags != 1 {
		t.Errorf("New/Child: %s %s", n.Append(nil), child.Append(nil))
	}
}

func BenchmarkParse(b *testing.B) {
	v := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	for b.Loop() {
		if _, ok := Parse(v); !ok {
			b.Fatal("no parse")
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	c := New(true)
	var buf [Len]byte
	for b.Loop() {
		c.Append(buf[:0])
	}
}

// TestDecodeEveryPair: the lookup table reads every two-byte input as
// encoding/hex does on lower-case digits, and refuses everything else
// (upper case included).
func TestDecodeEveryPair(t *testing.T) {
	const digits = "0123456789abcdef"
	for a := range 256 {
		for b := range 256 {
			var got [1]byte
			ok := decode(got[:], []byte{byte(a), byte(b)})
			wantOK := strings.IndexByte(digits, byte(a)) >= 0 && strings.IndexByte(digits, byte(b)) >= 0
			if ok != wantOK || ok && int(got[0]) != strings.IndexByte(digits, byte(a))<<4|strings.IndexByte(digits, byte(b)) {
				t.Fatalf("decode(%q) = %#x, %v; want ok %v", []byte{byte(a), byte(b)}, got[0], ok, wantOK)
			}
		}
	}
}
