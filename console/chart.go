package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/units"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// Charts are drawn on the server as SVG (no script, no chart library, no
// inline style: the CSP holds), each with a table of the same figures for
// screen readers and for anyone who wants the numbers.

// chart is one line chart over time.
type chart struct {
	ID, Title string
	Lines     []line
	Table     table
	// Crossed says whether a drawn line went past its threshold: the
	// caption says so in words too.
	Crossed bool
	// The SVG's parts, in its viewBox coordinates: the plot's edges and
	// the ticks.
	ViewBox        string
	L, R, T, B     float64
	YTicks, XTicks []tick
}

// line is one series: its name, its class (the colour and dash in
// console.css), the SVG points and, for a threshold, that it is one.
type line struct {
	Name, Class string
	Points      string
	Threshold   bool
	// Top is the line's highest point (smallest y), for tests and the
	// caption.
	Top float64
}

type tick struct {
	At    float64
	Label string
}

// table is a chart's figures: a row per sample.
type table struct {
	Head []string
	Rows [][]string
}

// The plot area inside the viewBox (0 0 chartW chartH).
const (
	chartW, chartH         = 640, 260
	plotL, plotR           = 104, 596
	plotT, plotB           = 14, 216
	maxTableRows, maxTicks = 64, 5
)

// series is a line's values, one per sample.
type series struct {
	name, class string
	values      []float64
	threshold   bool
}

// axis is a chart's x axis: the values (seconds, from any origin), what
// they are (the table's first column) and how to write one.
type axis struct {
	values []float64
	from   float64 // the axis' left end
	name   string
	label  func(x float64) string
	// minTop is the least the y axis reaches, so that a chart of zeros
	// has a sensible scale (1/s, 1 ms).
	minTop float64
}

// stepAxis is seconds into a rollout step.
func stepAxis(xs []float64) axis {
	span := 1.0
	if len(xs) > 0 {
		span = max(xs[len(xs)-1], 1)
	}
	return axis{values: xs, name: "time into the step", label: func(x float64) string { return elapsed(x, span) }}
}

// newChart draws series over the x axis, the y axis from 0 to the largest
// value (or the threshold) with format for its labels.
func newChart(id, title string, ax axis, format func(float64) string, all ...series) chart {
	xs := ax.values
	c := chart{ID: id, Title: title, ViewBox: fmt.Sprintf("0 0 %d %d", chartW, chartH), L: plotL, R: plotR, T: plotT, B: plotB}
	top := 0.0
	for _, s := range all {
		for _, v := range s.values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				top = max(top, v)
			}
		}
	}
	top = max(top, ax.minTop)
	if top == 0 {
		top = 1e-9 // a flat line at zero
	}
	top *= 1.1
	lo, span := ax.from, 1.0
	if len(xs) > 0 {
		span = max(xs[len(xs)-1]-lo, 1)
	}
	x := func(s float64) float64 { return plotL + (plotR-plotL)*(s-lo)/span }
	y := func(v float64) float64 { return plotB - (plotB-plotT)*min(max(v, 0), top)/top }
	for _, s := range all {
		l := line{Name: s.name, Class: s.class, Threshold: s.threshold, Top: plotB}
		var pts []string
		for i, v := range s.values {
			if i >= len(xs) || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			py := y(v)
			l.Top = min(l.Top, py)
			pts = append(pts, strconv.FormatFloat(x(xs[i]), 'f', 1, 64)+","+strconv.FormatFloat(py, 'f', 1, 64))
		}
		l.Points = strings.Join(pts, " ")
		c.Lines = append(c.Lines, l)
	}
	c.Crossed = crossed(all)
	for i := 0; i <= maxTicks-1; i++ {
		v := top / 1.1 * float64(i) / float64(maxTicks-1)
		c.YTicks = append(c.YTicks, tick{At: y(v), Label: format(v)})
		s := lo + span*float64(i)/float64(maxTicks-1)
		c.XTicks = append(c.XTicks, tick{At: x(s), Label: ax.label(s)})
	}
	c.Table.Head = []string{ax.name}
	for _, s := range all {
		c.Table.Head = append(c.Table.Head, s.name)
	}
	step := max(1, (len(xs)+maxTableRows-1)/maxTableRows)
	for i := 0; i < len(xs); i += step {
		row := []string{ax.label(xs[i])}
		for _, s := range all {
			cell := "–"
			if i < len(s.values) {
				cell = format(s.values[i])
			}
			row = append(row, cell)
		}
		c.Table.Rows = append(c.Table.Rows, row)
	}
	return c
}

// elapsed writes seconds into a step on an axis that spans span seconds:
// tenths of a second on a short one.
func elapsed(seconds, span float64) string {
	d := time.Duration(seconds * float64(time.Second))
	if span < 10 {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// crossed says whether the first series went above the threshold series
// at any sample.
func crossed(all []series) bool {
	var first, limit *series
	for i := range all {
		switch {
		case all[i].threshold && limit == nil:
			limit = &all[i]
		case !all[i].threshold && first == nil:
			first = &all[i]
		}
	}
	if first == nil || limit == nil {
		return false
	}
	for i, v := range first.values {
		if i < len(limit.values) && v > limit.values[i] {
			return true
		}
	}
	return false
}

// stepCharts are a rollout step's charts: the candidate against the
// stable version, with the thresholds a breach is judged on drawn.
func stepCharts(samples []wire.FigureSample, th wire.Thresholds) []chart {
	if len(samples) < 2 {
		return nil
	}
	n := len(samples)
	xs := make([]float64, n)
	get := func(f func(wire.FigureSample) float64) []float64 {
		out := make([]float64, n)
		for i, s := range samples {
			out[i] = f(s)
		}
		return out
	}
	for i, s := range samples {
		xs[i] = s.Seconds
	}
	ax := stepAxis(xs)
	constant := func(v float64) []float64 { return get(func(wire.FigureSample) float64 { return v }) }
	floor := time.Duration(th.LatencyFloor).Seconds()
	return []chart{
		newChart("error-rate", "Error rate (5xx)", ax, units.Percent,
			series{name: "candidate", class: "candidate", values: get(func(s wire.FigureSample) float64 { return s.CandidateErrorRate })},
			series{name: "stable", class: "stable", values: get(func(s wire.FigureSample) float64 { return s.StableErrorRate })},
			series{name: "rollback past", class: "threshold", threshold: true,
				values: get(func(s wire.FigureSample) float64 { return s.StableErrorRate + th.MaxErrorRate })}),
		newChart("latency", "p99 latency", ax, units.Seconds,
			series{name: "candidate", class: "candidate", values: get(func(s wire.FigureSample) float64 { return s.CandidateP99 })},
			series{name: "stable", class: "stable", values: get(func(s wire.FigureSample) float64 { return s.StableP99 })},
			series{name: "rollback past", class: "threshold", threshold: true,
				values: get(func(s wire.FigureSample) float64 { return max(s.StableP99*th.MaxLatencyRatio, s.StableP99+floor) })}),
		newChart("label-shift", "Label shift: the candidate's label shares against the stable version's", ax, units.Percent,
			series{name: "candidate", class: "candidate", values: get(func(s wire.FigureSample) float64 { return s.LabelShift })},
			series{name: "rollback past", class: "threshold", threshold: true, values: constant(th.MaxLabelShift)}),
		newChart("disagreement", "Shadow disagreement", ax, units.Percent,
			series{name: "candidate", class: "candidate", values: get(func(s wire.FigureSample) float64 { return s.Disagreement })},
			series{name: "rollback past", class: "threshold", threshold: true, values: constant(th.MaxDisagreement)}),
	}
}

// chartFuncs are the template functions the charts and figures use.
var chartFuncs = template.FuncMap{
	"stepCharts":   stepCharts,
	"regionCharts": regionCharts,
	"seconds":      units.Seconds,
	"percent":      units.Percent,
	"add":          func(a, b float64) float64 { return a + b },
	"float":        func(n int) float64 { return float64(n) },
	"stepView": func(samples []wire.FigureSample, th wire.Thresholds) map[string]any {
		return map[string]any{"Samples": samples, "Thresholds": th}
	},
}

// regionCharts are a region's last hour at the geo router, a minute at a
// time: attempts per second, their p99 and the breaker's worst state.
func regionCharts(minutes []geoMinute) []chart {
	if len(minutes) == 0 {
		return nil
	}
	n := len(minutes)
	xs, rps, p99, breaker := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, m := range minutes {
		xs[i] = float64(m.Start.Unix())
		rps[i] = float64(m.Requests) / 60
		p99[i] = m.P99Seconds
		breaker[i] = float64(m.Breaker)
	}
	ax := axis{values: xs, from: xs[0], name: "minute (UTC)",
		label: func(x float64) string { return time.Unix(int64(x), 0).UTC().Format("15:04") }}
	perSecond := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "/s" }
	withTop := func(a axis, top float64) axis { a.minTop = top; return a }
	return []chart{
		newChart("rps", "Requests per second", withTop(ax, 1), perSecond, series{name: "requests", class: "stable", values: rps}),
		newChart("p99", "p99 latency", withTop(ax, 1e-3), units.Seconds, series{name: "p99", class: "stable", values: p99}),
		newChart("breaker", "Breaker (worst state in the minute)", withTop(ax, 2), breakerName,
			series{name: "breaker", class: "candidate", values: breaker}),
	}
}

// breakerName names a breaker state on an axis: 0 closed, 1 half-open, 2
// open (gobreaker's numbering).
func breakerName(v float64) string {
	switch v {
	case 0:
		return "closed"
	case 1:
		return "half-open"
	case 2:
		return "open"
	}
	return "" // between two states: an axis tick without a name
}
