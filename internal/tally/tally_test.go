package tally

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The reference for every test here is VictoriaMetrics' own writing of
// the same observations: tally's series must be the very lines
// metrics.PrometheusHistogram and metrics.Counter write.

func TestHistogramWritesWhatMetricsWrites(t *testing.T) {
	latency := []float64{1e-05, 2.5e-05, 5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	cases := []struct {
		name, labels string
		bounds       []float64
		values       func(r *rand.Rand) float64
	}{
		{"latency_seconds", `route="/v1/predict"`, latency, func(r *rand.Rand) float64 { return r.ExpFloat64() * 3e-4 }},
		{"score_ratio", `version="v1",x="y"`, []float64{0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1}, func(r *rand.Rand) float64 { return 0.5 + r.Float64()/2 }},
		{"text_bytes", "", []float64{16, 32, 64, 128, 256, 512, 1024}, func(r *rand.Rand) float64 { return float64(r.IntN(3000)) }},
		{"with_inf", `a="b"`, []float64{1, 2, math.Inf(+1)}, func(r *rand.Rand) float64 { return r.Float64() * 4 }},
		{"odd_values", "", []float64{0, 1, 2}, func(r *rand.Rand) float64 {
			return []float64{0, 1, 2, 3, -1, math.NaN(), math.Inf(+1), 1e-300}[r.IntN(8)]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 1000} {
				set := metrics.NewSet()
				series := c.name
				if c.labels != "" {
					series += "{" + c.labels + "}"
				}
				ref := set.NewPrometheusHistogramExt(series, c.bounds)
				h := NewHistogram(c.bounds)
				r := rand.New(rand.NewPCG(1, uint64(n)))
				for range n {
					v := c.values(r)
					ref.Update(v)
					h.Observe(v)
				}
				var want, got bytes.Buffer
				set.WritePrometheus(&want)
				snap := h.Snapshot()
				snap.Write(&got, c.name, c.labels)
				if got.String() != want.String() {
					t.Fatalf("%d observations: tally wrote\n%s\nmetrics wrote\n%s", n, got.String(), want.String())
				}
			}
		})
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	h := NewHistogram([]float64{1, 2})
	h.Observe(0.5)
	s := h.Snapshot()
	h.Observe(0.5)
	h.Observe(5)
	if s.Count() != 1 || h.Count() != 3 {
		t.Fatalf("snapshot count %d (want 1), histogram count %d (want 3)", s.Count(), h.Count())
	}
}

func TestCounterAndFamilyWriteWhatMetricsWrites(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	set := metrics.NewSet()
	set.NewCounter(`requests_total{route="/a",code="200"}`).Add(7)
	set.NewCounter(`requests_total{route="/a",code="404"}`).Add(2)
	set.NewCounter(`plain_total`).Add(3)
	var want, got bytes.Buffer
	set.WritePrometheus(&want)

	WriteFamily(&got, "plain_total", "counter")
	WriteCounter(&got, "plain_total", "", 3)
	WriteFamily(&got, "requests_total", "counter")
	WriteCounter(&got, "requests_total", `route="/a",code="200"`, 7)
	WriteCounter(&got, "requests_total", `route="/a",code="404"`, 2)
	if got.String() != want.String() {
		t.Fatalf("tally wrote\n%s\nmetrics wrote\n%s", got.String(), want.String())
	}
	if !strings.Contains(got.String(), "# TYPE requests_total counter\n") {
		t.Fatalf("no TYPE line in\n%s", got.String())
	}
}

func TestHistogramFamilyLine(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	set := metrics.NewSet()
	set.NewPrometheusHistogramExt(`d_seconds{v="1"}`, []float64{1, 2}).Update(1.5)
	var want, got bytes.Buffer
	set.WritePrometheus(&want)
	h := NewHistogram([]float64{1, 2})
	h.Observe(1.5)
	WriteFamily(&got, "d_seconds", "histogram")
	h.Write(&got, "d_seconds", `v="1"`)
	if got.String() != want.String() {
		t.Fatalf("tally wrote\n%s\nmetrics wrote\n%s", got.String(), want.String())
	}
}

func TestNewHistogramRefusesBadBounds(t *testing.T) {
	for _, b := range [][]float64{nil, {2, 1}, {1, 1}, {math.NaN()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("bounds %v: no panic", b)
				}
			}()
			NewHistogram(b)
		}()
	}
}

func BenchmarkObserve(b *testing.B) {
	h := NewHistogram([]float64{1e-05, 2.5e-05, 5e-05, 0.0001, 0.00025, 0.0005, 0.001})
	for i := 0; b.Loop(); i++ {
		h.Observe(float64(i%100) * 1e-6)
	}
}
