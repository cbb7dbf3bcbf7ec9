package units

import (
	"math"
	"testing"
)

func TestSeconds(t *testing.T) {
	for s, want := range map[float64]string{0: "0 ms", 12e-6: "12.0 µs", 870e-6: "870 µs", 1.234e-3: "1.23 ms", 0.0456: "45.6 ms",
		0.25: "250 ms", 2.5: "2.50 s", 12: "12.0 s", 600: "600 s", math.NaN(): "–"} {
		if got := Seconds(s); got != want {
			t.Errorf("Seconds(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestPercent(t *testing.T) {
	for share, want := range map[float64]string{0: "0 %", 0.0144: "1.44 %", 0.0005: "0.050 %", 1: "100 %", 0.2: "20.0 %",
		0.00000001: "<0.001 %", 0.123456: "12.3 %"} {
		if got := Percent(share); got != want {
			t.Errorf("Percent(%v) = %q, want %q", share, got, want)
		}
	}
}
