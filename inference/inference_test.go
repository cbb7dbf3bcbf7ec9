package inference

import "testing"

func TestArgMax(t *testing.T) {
	f := func(row []float32, want int) {
		t.Helper()
		if got := ArgMax(row); got != want {
			t.Errorf("ArgMax(%v) = %d, want %d", row, got, want)
		}
	}
	f(nil, -1)
	f([]float32{0.2, 0.8}, 1)
	f([]float32{0.5, 0.5}, 0)
	f([]float32{0.1, 0.6, 0.3}, 1)
	f([]float32{0.2, 0.2, 0.6}, 2)
}
