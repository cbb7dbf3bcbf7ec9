package console

import (
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestTimeline: production promoted globally, then v2 in eu-west, then
// rolled back: a row for eu-west and one for the other regions, each
// version's stretch in its colour, a mark per move, a table row per move.
func TestTimeline(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	revs := []wire.Channel{
		{Global: "v1", UpdatedAt: t0, Change: wire.Change{Action: "promote", Actor: "alice"}},
		{Global: "v1", Regions: map[string]string{"eu-west": "v2"}, UpdatedAt: t0.Add(30 * time.Minute), Change: wire.Change{Action: "promote", Actor: "alice"}},
		{Global: "v1", Regions: map[string]string{"eu-west": "v1"}, UpdatedAt: t0.Add(45 * time.Minute), Change: wire.Change{Action: "rollback", Actor: "bob", Reason: "bad"}},
	}
	tl := newTimeline(revs, t0.Add(time.Hour))
	if len(tl.Rows) != 2 || tl.Rows[0].Label != "eu-west" || tl.Rows[1].Label != otherRegions {
		t.Fatalf("rows %+v", tl.Rows)
	}
	eu := tl.Rows[0].Segments
	if len(eu) != 3 || eu[0].Version != "v1" || eu[1].Version != "v2" || eu[2].Version != "v1" || eu[1].Class == eu[0].Class || eu[2].Class != eu[0].Class {
		t.Errorf("eu-west's stretches %+v", eu)
	}
	if w := eu[1].W; w < (lineR-lineL)/4-1 || w > (lineR-lineL)/4+1 {
		t.Errorf("v2 served a quarter of the hour: width %v", w)
	}
	if len(tl.Marks) != 3 || tl.Marks[2].Class != "rollback" || len(tl.Table.Rows) != 3 || tl.Table.Rows[2][4] != "bad" {
		t.Errorf("marks %+v, table %v", tl.Marks, tl.Table.Rows)
	}
	if tl.Table.Rows[1][3] != "v1 (eu-west: v2)" {
		t.Errorf("targets after the second move: %q", tl.Table.Rows[1][3])
	}
	if newTimeline(nil, t0) != nil {
		t.Error("no history, no timeline")
	}
}
