// Package units writes measurements for people: a duration in seconds as
// µs, ms or s with three significant figures, a share as a percentage.
package units

import (
	"math"
	"strconv"
)

// Seconds writes s (seconds) in the unit that reads best: 870 µs,
// 1.23 ms, 2.5 s.
func Seconds(s float64) string {
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return "–"
	case s == 0:
		return "0 ms"
	case s < 1e-3:
		return sig(s*1e6) + " µs"
	case s < 1:
		return sig(s*1e3) + " ms"
	}
	return sig(s) + " s"
}

// Percent writes a share (0 to 1) as a percentage with three significant
// figures, at most three decimals: 1.44 %, 0.05 %, 100 %.
func Percent(share float64) string {
	if math.IsNaN(share) || math.IsInf(share, 0) {
		return "–"
	}
	p := share * 100
	if p != 0 && math.Abs(p) < 0.001 {
		return "<0.001 %"
	}
	return sig(p) + " %"
}

// sig is v with three significant figures (at most three decimals).
func sig(v float64) string {
	if v == 0 {
		return "0"
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(v)))) - 1
	digits = max(0, min(digits, 3))
	return strconv.FormatFloat(v, 'f', digits, 64)
}
