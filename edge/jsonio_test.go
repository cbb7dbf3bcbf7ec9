package edge

import (
	"math"
	"strconv"
	"testing"
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
