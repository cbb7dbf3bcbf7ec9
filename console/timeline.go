package console

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// timeline is a channel's history drawn: a row per region, each a bar of
// the versions it was told to serve over time, and a mark at every
// promote and rollback; with the same moves as a table.
type timeline struct {
	ViewBox string
	Height  int
	Rows    []timelineRow
	Marks   []timelineMark
	Ticks   []tick
	Table   table
	Legend  []legendKey
}

type timelineRow struct {
	Label     string
	Y, LabelY float64
	Segments  []segment
}

// segment is one version's stretch on a row.
type segment struct {
	X, W    float64
	Class   string // the version's colour: v0 … v5
	Version string
}

// timelineMark is one move: a promote (class "promote") or a rollback.
type timelineMark struct {
	X     float64
	Class string
	Title string
}

type legendKey struct{ Class, Version string }

// The timeline's geometry, in its viewBox.
const (
	lineL, lineR   = 130, 580
	rowH, rowGap   = 26, 12
	lineTop        = 30
	versionColours = 6
)

// The global target's row: "every region" on a channel that never had a
// per-region one, else "other regions".
const (
	everywhere   = "every region"
	otherRegions = "other regions"
)

// newTimeline draws revisions (oldest first) of a channel up to now.
func newTimeline(revisions []wire.Channel, now time.Time) *timeline {
	if len(revisions) == 0 {
		return nil
	}
	from := revisions[0].UpdatedAt
	span := max(now.Sub(from).Seconds(), 1)
	x := func(t time.Time) float64 { return lineL + (lineR-lineL)*t.Sub(from).Seconds()/span }
	regions := timelineRegions(revisions)
	colour := map[string]string{}
	tl := &timeline{}
	for i, region := range regions {
		row := timelineRow{Label: region, Y: float64(lineTop + i*(rowH+rowGap))}
		row.LabelY = row.Y + rowH/2 + 6
		for j, rev := range revisions {
			v := targetOf(rev, region)
			if v == "" {
				continue
			}
			if _, ok := colour[v]; !ok {
				colour[v] = fmt.Sprintf("v%d", len(colour)%versionColours)
				tl.Legend = append(tl.Legend, legendKey{Class: colour[v], Version: v})
			}
			end := now
			if j+1 < len(revisions) {
				end = revisions[j+1].UpdatedAt
			}
			row.Segments = append(row.Segments, segment{X: x(rev.UpdatedAt), W: max(x(end)-x(rev.UpdatedAt), 1), Class: colour[v], Version: v})
		}
		tl.Rows = append(tl.Rows, row)
	}
	tl.Height = lineTop + len(regions)*(rowH+rowGap) + 30
	tl.ViewBox = fmt.Sprintf("0 0 640 %d", tl.Height)
	tl.Table.Head = []string{"time (UTC)", "move", "by", "targets after", "reason"}
	for _, rev := range revisions {
		class := "promote"
		if rev.Change.Action == "rollback" {
			class = "rollback"
		}
		after := describeTargets(rev)
		tl.Marks = append(tl.Marks, timelineMark{X: x(rev.UpdatedAt), Class: class,
			Title: fmt.Sprintf("%s %s by %s: %s", rev.UpdatedAt.UTC().Format("15:04:05"), rev.Change.Action, rev.Change.Actor, after)})
		tl.Table.Rows = append(tl.Table.Rows, []string{rev.UpdatedAt.UTC().Format("2006-01-02 15:04:05"), rev.Change.Action,
			rev.Change.Actor, after, rev.Change.Reason})
	}
	clock := "15:04"
	if span < 600 {
		clock = "15:04:05"
	}
	if span > 2*86400 {
		clock = "Jan 2 15:04"
	}
	for i := range 5 {
		t := from.Add(time.Duration(float64(i) / 4 * span * float64(time.Second)))
		tl.Ticks = append(tl.Ticks, tick{At: x(t), Label: t.UTC().Format(clock)})
	}
	return tl
}

// timelineRegions are the rows: every region any revision names, in name
// order, or one row when the channel only ever had a global target.
func timelineRegions(revisions []wire.Channel) []string {
	var out []string
	for _, rev := range revisions {
		for r := range rev.Regions {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{everywhere}
	}
	for _, rev := range revisions {
		if rev.Global != "" {
			return append(out, otherRegions)
		}
	}
	return out
}

// targetOf is what rev tells region (or the global row) to serve.
func targetOf(rev wire.Channel, region string) string {
	if region == everywhere || region == otherRegions {
		return rev.Global
	}
	if v, ok := rev.Regions[region]; ok {
		return v
	}
	return rev.Global
}

// describeTargets writes a revision's targets: "v2 (eu-west: v3)".
func describeTargets(rev wire.Channel) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(rev.Regions)) {
		parts = append(parts, r+": "+rev.Regions[r])
	}
	s := rev.Global
	if s == "" {
		s = "nothing everywhere"
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}
