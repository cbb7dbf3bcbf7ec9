package geo

import (
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// TestHistory: a region's minutes count its attempts, failures, p99 and
// worst breaker state; a minute an hour old is forgotten when its slot
// comes round again; minutes with nothing are zeros.
func TestHistory(t *testing.T) {
	h := new(history)
	t0 := time.Date(2026, 12, 7, 10, 0, 30, 0, time.UTC)
	for i := range 100 {
		h.record(t0, 0.0004, i == 0) // 400 µs, one failure
	}
	h.record(t0, 0.2, false) // one slow attempt: the p99 bucket holds 400 µs still
	h.breakerState(t0, gobreaker.StateOpen)
	h.breakerState(t0, gobreaker.StateHalfOpen) // the worst stays
	h.record(t0.Add(2*time.Minute), 0.03, true)
	got := h.last(t0.Add(2*time.Minute), gobreaker.StateClosed)
	if len(got) != historyMinutes {
		t.Fatalf("%d minutes", len(got))
	}
	first, gap, last := got[len(got)-3], got[len(got)-2], got[len(got)-1]
	if first.Requests != 101 || first.Failed != 1 || first.Breaker != 2 || first.P99Seconds != 0.0005 {
		t.Errorf("the first minute: %+v", first)
	}
	if gap.Requests != 0 || gap.P99Seconds != 0 || !gap.Start.Equal(t0.Add(time.Minute).Truncate(time.Minute)) {
		t.Errorf("the empty minute: %+v", gap)
	}
	if last.Requests != 1 || last.Failed != 1 || last.P99Seconds != 0.05 {
		t.Errorf("the last minute: %+v", last)
	}
	// An hour later the first minute's slot is reused, and starts empty.
	later := t0.Add(time.Hour)
	h.record(later, 0.001, false)
	if m := h.last(later, gobreaker.StateClosed); m[len(m)-1].Requests != 1 || m[len(m)-1].Breaker != 0 {
		t.Errorf("the slot an hour on: %+v", m[len(m)-1])
	}
}
