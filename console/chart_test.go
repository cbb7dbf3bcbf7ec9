package console

import (
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestStepCharts: a step's samples become four charts; the label-shift
// chart of a candidate past its threshold says it crossed and draws the
// candidate above the threshold line; every chart has a table row per
// sample and its latencies in µs or ms.
func TestStepCharts(t *testing.T) {
	th := wire.Thresholds{MaxErrorRate: 0.01, MaxLatencyRatio: 1.5, LatencyFloor: wire.Duration(1e6), MaxLabelShift: 0.1, MaxDisagreement: 0.2}
	samples := []wire.FigureSample{
		{Seconds: 1, StableP99: 90e-6, CandidateP99: 95e-6},
		{Seconds: 2, StableP99: 90e-6, CandidateP99: 2.5e-3, LabelShift: 0.05},
		{Seconds: 3, StableP99: 90e-6, CandidateP99: 100e-6, LabelShift: 0.6, Disagreement: 0.1},
	}
	charts := stepCharts(samples, th)
	if len(charts) != 4 {
		t.Fatalf("%d charts, want 4", len(charts))
	}
	byID := map[string]chart{}
	for _, c := range charts {
		byID[c.ID] = c
		if len(c.Table.Rows) != 3 || len(c.Table.Head) != len(c.Lines)+1 {
			t.Errorf("%s: table %v", c.ID, c.Table)
		}
	}
	shift := byID["label-shift"]
	if !shift.Crossed || shift.Lines[0].Top >= shift.Lines[1].Top {
		t.Errorf("label shift past 0.1: crossed %v, candidate top %v, threshold top %v", shift.Crossed, shift.Lines[0].Top, shift.Lines[1].Top)
	}
	if byID["disagreement"].Crossed || byID["error-rate"].Crossed {
		t.Error("disagreement and error rate stayed under their thresholds")
	}
	if !byID["latency"].Crossed {
		t.Error("a 2.5 ms p99 against 90 µs (at most 1.5x, or +1 ms) is past the threshold")
	}
	if row := strings.Join(byID["latency"].Table.Rows[1], " "); !strings.Contains(row, "2.50 ms") || !strings.Contains(row, "90.0 µs") {
		t.Errorf("latency row %q, want ms and µs", row)
	}
	if stepCharts(samples[:1], th) != nil {
		t.Error("one sample draws no chart")
	}
}

// TestRegionCharts: a region's minutes become requests per second, p99
// and the breaker, labelled by the minute.
func TestRegionCharts(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	minutes := []geoMinute{{Start: start}, {Start: start.Add(time.Minute), Requests: 600, P99Seconds: 0.0025, Breaker: 2}}
	charts := regionCharts(minutes)
	if len(charts) != 3 {
		t.Fatalf("%d charts", len(charts))
	}
	for i, want := range [][]string{{"10:01", "10/s"}, {"10:01", "2.50 ms"}, {"10:01", "open"}} {
		if got := charts[i].Table.Rows[1]; got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: row %v, want %v", charts[i].ID, got, want)
		}
	}
	if regionCharts(nil) != nil {
		t.Error("no minutes, no chart")
	}
}
