package edge

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tally"
	"github.com/sentimentpro/sentiment/model"
)

var (
	modelLoaded     = metrics.NewGauge(`edge_model_loaded`, nil) // 1 once a model is served
	modelSwaps      = metrics.NewCounter(`edge_model_swaps_total`)
	rateLimited     = metrics.NewCounter(`edge_rate_limited_total`)
	modelLoadsOK    = metrics.NewCounter(`edge_model_loads_total{result="ok"}`)
	modelLoadsBad   = metrics.NewCounter(`edge_model_loads_total{result="rejected"}`)
	modelLoadTime   = metrics.NewPrometheusHistogram(`edge_model_load_duration_seconds`)
	syncErrors      = metrics.NewCounter(`edge_registry_errors_total`)
	peerForwardsOK  = metrics.NewCounter(`edge_peer_forwards_total{result="ok"}`)
	peerForwardsBad = metrics.NewCounter(`edge_peer_forwards_total{result="error"}`)
	// lastSync is when the syncer last heard from the registry and applied
	// (or kept) what it resolved: alerts compare it with time().
	lastSync = metrics.NewGauge(`edge_model_sync_last_success_timestamp_seconds`, nil)
)

// modelInfo is the edge_model_info series of the serving model: one series
// with value 1, replaced on every swap, so dashboards can count edges per
// version and region (the region is the scrape target's label).
var modelInfo struct {
	mu   sync.Mutex
	name string
}

func setModelInfo(sv *Serving) {
	name := fmt.Sprintf(`edge_model_info{model=%q,version=%q,digest=%q,source=%q}`,
		sv.Name, sv.Version, sv.Digest, sv.Source)
	modelInfo.mu.Lock()
	defer modelInfo.mu.Unlock()
	if modelInfo.name != "" && modelInfo.name != name {
		metrics.UnregisterMetric(modelInfo.name)
	}
	modelInfo.name = name
	metrics.GetOrCreateGauge(name, nil).Set(1)
}

// The request and model-monitoring series are kept in tally groups, one
// lock per route and per version, and written by writeTallies at every
// scrape, after the rest of the registry.
func init() { metrics.RegisterMetricsWriter(writeTallies) }

// routeMetrics is one route's edge_requests_total (per status code) and
// edge_request_duration_seconds.
type routeMetrics struct {
	route string
	mu    sync.Mutex
	c     routeCounts
}

type routeCounts struct {
	codes   []codeCount // the codes seen; a route answers with few
	latency tally.Histogram
}

type codeCount struct {
	code int
	n    uint64
}

var routes struct {
	mu  sync.Mutex
	all map[string]*routeMetrics
}

func metricsFor(route string) *routeMetrics {
	routes.mu.Lock()
	defer routes.mu.Unlock()
	if rm := routes.all[route]; rm != nil {
		return rm
	}
	if routes.all == nil {
		routes.all = map[string]*routeMetrics{}
	}
	rm := &routeMetrics{route: route, c: routeCounts{latency: tally.NewHistogram(latencyBuckets)}}
	routes.all[route] = rm
	return rm
}

func (rm *routeMetrics) observe(code int, seconds float64) {
	rm.mu.Lock()
	rm.c.count(code)
	rm.c.latency.Observe(seconds)
	rm.mu.Unlock()
}

func (c *routeCounts) count(code int) {
	for i := range c.codes {
		if c.codes[i].code == code {
			c.codes[i].n++
			return
		}
	}
	c.codes = append(c.codes, codeCount{code: code, n: 1})
}

func (rm *routeMetrics) snapshot() routeCounts {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	return routeCounts{codes: slices.Clone(rm.c.codes), latency: rm.c.latency.Snapshot()}
}

// latencyBuckets start at 10 µs: the handler takes a few microseconds.
var latencyBuckets = obs.LatencyBuckets(10e-6)

// Model monitoring buckets: the predicted label's score (0.5 to 1 for two
// labels) and the text's length in bytes.
var (
	scoreBuckets     = []float64{0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1}
	textBytesBuckets = []float64{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}
)

// monitor is the model monitoring of one served version: the prediction
// requests it answered (and how many failed, and how long they took),
// predictions per label, the predicted label's score and the text length.
// A drifting, broken or slow model shows in them, and rollout analysis
// compares them across versions (see docs/ROLLOUTS.md).
type monitor struct {
	version    string
	labelNames [2]string
	mu         sync.Mutex
	c          monitorCounts
}

type monitorCounts struct {
	requests  uint64
	errors    uint64
	labels    [2]uint64
	latency   tally.Histogram
	score     tally.Histogram
	textBytes tally.Histogram
}

// served records one prediction request this version answered.
func (m *monitor) served(code int, seconds float64) {
	m.mu.Lock()
	m.c.requests++
	if code >= 500 {
		m.c.errors++
	}
	m.c.latency.Observe(seconds)
	m.mu.Unlock()
}

// predicted records one prediction of a text of textBytes bytes.
func (m *monitor) predicted(p model.Prediction, textBytes int) {
	m.mu.Lock()
	m.c.labels[p.Index]++
	m.c.score.Observe(float64(p.Score))
	m.c.textBytes.Observe(float64(textBytes))
	m.mu.Unlock()
}

func (m *monitor) snapshot() monitorCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.c
	c.latency = m.c.latency.Snapshot()
	c.score = m.c.score.Snapshot()
	c.textBytes = m.c.textBytes.Snapshot()
	return c
}

var monitors struct {
	mu  sync.Mutex
	all map[string]*monitor // by version: a version's series outlive its swaps
}

// monitorFor returns the monitor of version, made on first use.
func monitorFor(labels [2]string, version string) *monitor {
	monitors.mu.Lock()
	defer monitors.mu.Unlock()
	if m := monitors.all[version]; m != nil {
		return m
	}
	if monitors.all == nil {
		monitors.all = map[string]*monitor{}
	}
	m := &monitor{version: version, labelNames: labels, c: monitorCounts{
		latency:   tally.NewHistogram(latencyBuckets),
		score:     tally.NewHistogram(scoreBuckets),
		textBytes: tally.NewHistogram(textBytesBuckets),
	}}
	monitors.all[version] = m
	return m
}

// writeTallies writes the routes' and the versions' series: each family
// together, routes and versions in name order, codes in numeric order.
func writeTallies(w io.Writer) {
	type route struct {
		label string
		c     routeCounts
	}
	var rs []route
	for _, rm := range sortedValues(&routes.mu, routes.all) {
		c := rm.snapshot()
		slices.SortFunc(c.codes, func(a, b codeCount) int { return a.code - b.code })
		rs = append(rs, route{fmt.Sprintf("route=%q", rm.route), c})
	}
	if len(rs) > 0 {
		tally.WriteFamily(w, "edge_requests_total", "counter")
		for _, r := range rs {
			for _, cc := range r.c.codes {
				tally.WriteCounter(w, "edge_requests_total", fmt.Sprintf(`%s,code="%d"`, r.label, cc.code), cc.n)
			}
		}
		tally.WriteFamily(w, "edge_request_duration_seconds", "histogram")
		for _, r := range rs {
			r.c.latency.Write(w, "edge_request_duration_seconds", r.label)
		}
	}
	writeMonitors(w)
}

func writeMonitors(w io.Writer) {
	type version struct {
		m *monitor
		c monitorCounts
	}
	var vs []version
	for _, m := range sortedValues(&monitors.mu, monitors.all) {
		vs = append(vs, version{m, m.snapshot()})
	}
	if len(vs) == 0 {
		return
	}
	label := func(v version) string { return fmt.Sprintf("version=%q", v.m.version) }
	counter := func(name string, value func(monitorCounts) uint64) {
		tally.WriteFamily(w, name, "counter")
		for _, v := range vs {
			tally.WriteCounter(w, name, label(v), value(v.c))
		}
	}
	histogram := func(name string, h func(*monitorCounts) *tally.Histogram) {
		tally.WriteFamily(w, name, "histogram")
		for _, v := range vs {
			h(&v.c).Write(w, name, label(v))
		}
	}
	counter("edge_version_requests_total", func(c monitorCounts) uint64 { return c.requests })
	counter("edge_version_errors_total", func(c monitorCounts) uint64 { return c.errors })
	histogram("edge_version_request_duration_seconds", func(c *monitorCounts) *tally.Histogram { return &c.latency })
	tally.WriteFamily(w, "edge_predictions_total", "counter")
	for _, v := range vs {
		for i, name := range v.m.labelNames {
			tally.WriteCounter(w, "edge_predictions_total", fmt.Sprintf("label=%q,%s", name, label(v)), v.c.labels[i])
		}
	}
	histogram("edge_prediction_score_ratio", func(c *monitorCounts) *tally.Histogram { return &c.score })
	histogram("edge_prediction_text_bytes", func(c *monitorCounts) *tally.Histogram { return &c.textBytes })
}

// sortedValues returns m's values in key order, read under mu.
func sortedValues[V any](mu *sync.Mutex, m map[string]V) []V {
	mu.Lock()
	defer mu.Unlock()
	out := make([]V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// breakerState is the gauge of a breaker's state: 0 closed, 1 half-open,
// 2 open (gobreaker's numbering).
func breakerState(name string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(fmt.Sprintf(`edge_breaker_state{breaker=%q}`, name), nil)
}
