// Package tally keeps statistics that one request updates together: plain
// counters and Prometheus histograms that sit side by side under their
// owner's one lock. A request then touches one lock and a few cache lines,
// where a metrics.Counter or metrics.PrometheusHistogram per series costs
// an atomic operation or a lock each, on lines of their own.
//
// The owner writes its series through VictoriaMetrics/metrics' metrics
// writers (metrics.RegisterMetricsWriter), line for line as
// metrics.Counter and metrics.PrometheusHistogram would write them.
package tally

import (
	"fmt"
	"io"
	"math"

	"github.com/VictoriaMetrics/metrics"
)

// Histogram counts observations into buckets with fixed upper bounds, as a
// Prometheus histogram does. It is not safe for concurrent use: its owner
// serialises Observe and Snapshot.
type Histogram struct {
	bounds []float64 // strictly increasing upper bounds, read-only
	les    []string  // the bounds as le label values, read-only
	// counts[i] is the observations in bucket i alone (not cumulative);
	// counts[len(bounds)] those above every bound.
	counts []uint64
	sum    float64
}

// NewHistogram returns an empty histogram with these upper bounds. It
// panics if they are not strictly increasing, as metrics does.
func NewHistogram(bounds []float64) Histogram {
	if err := metrics.ValidateBuckets(bounds); err != nil {
		panic(fmt.Sprintf("tally: %v", err))
	}
	if math.IsInf(bounds[len(bounds)-1], +1) { // +Inf is always written
		bounds = bounds[:len(bounds)-1]
	}
	les := make([]string, len(bounds))
	for i, b := range bounds {
		les[i] = fmt.Sprintf("%v", b) // as metrics.PrometheusHistogram formats le
	}
	return Histogram{bounds: bounds, les: les, counts: make([]uint64, len(bounds)+1)}
}

// Observe counts v in its bucket. NaN and negative values are ignored, as
// metrics.PrometheusHistogram ignores them.
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) || v < 0 {
		return
	}
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
}

// Snapshot returns a copy of h that shares nothing mutable with it, to be
// written after the owner's lock is released.
func (h *Histogram) Snapshot() Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return c
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Write writes h as the series of the histogram name{labels}: the
// cumulative name_bucket series with le last among the labels, then
// name_sum and name_count. labels is empty or label pairs without braces,
// e.g. `version="v1"`.
func (h *Histogram) Write(w io.Writer, name, labels string) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cumulative uint64
	for i, le := range h.les {
		cumulative += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%s%sle=%q} %d\n", name, labels, sep, le, cumulative)
	}
	count := h.Count()
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, count)
	braced := ""
	if labels != "" {
		braced = "{" + labels + "}"
	}
	if float64(int64(h.sum)) == h.sum {
		fmt.Fprintf(w, "%s_sum%s %d\n", name, braced, int64(h.sum))
	} else {
		fmt.Fprintf(w, "%s_sum%s %g\n", name, braced, h.sum)
	}
	fmt.Fprintf(w, "%s_count%s %d\n", name, braced, count)
}

// WriteCounter writes one counter series, name{labels} v.
func WriteCounter(w io.Writer, name, labels string, v uint64) {
	if labels != "" {
		fmt.Fprintf(w, "%s{%s} %d\n", name, labels, v)
		return
	}
	fmt.Fprintf(w, "%s %d\n", name, v)
}

// WriteFamily writes the HELP and TYPE lines of the metric family name
// ("counter" or "histogram") when metadata is exposed
// (metrics.ExposeMetadata). Write it once, before the family's series: a
// family's series must be written together.
func WriteFamily(w io.Writer, name, typ string) {
	metrics.WriteMetadataIfNeeded(w, name, typ)
}
