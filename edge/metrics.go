package edge

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"
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

// routeMetrics caches the per-route, per-status series so the hot path
// does no formatting.
type routeMetrics struct {
	mu       sync.RWMutex
	counters map[int]*metrics.Counter
	latency  *metrics.PrometheusHistogram
	route    string
}

var routes sync.Map // route -> *routeMetrics

func metricsFor(route string) *routeMetrics {
	if rm, ok := routes.Load(route); ok {
		return rm.(*routeMetrics)
	}
	rm := &routeMetrics{
		counters: map[int]*metrics.Counter{},
		latency:  metrics.GetOrCreatePrometheusHistogram(fmt.Sprintf(`edge_request_duration_seconds{route=%q}`, route)),
		route:    route,
	}
	actual, _ := routes.LoadOrStore(route, rm)
	return actual.(*routeMetrics)
}

func (rm *routeMetrics) observe(code int, seconds float64) {
	rm.mu.RLock()
	c := rm.counters[code]
	rm.mu.RUnlock()
	if c == nil {
		c = metrics.GetOrCreateCounter(fmt.Sprintf(`edge_requests_total{route=%q,code="%d"}`, rm.route, code))
		rm.mu.Lock()
		rm.counters[code] = c
		rm.mu.Unlock()
	}
	c.Inc()
	rm.latency.Update(seconds)
}

// predictionCounter returns the counter of predictions of one label by one
// model version.
func predictionCounter(label, version string) *metrics.Counter {
	return metrics.GetOrCreateCounter(fmt.Sprintf(`edge_predictions_total{label=%q,version=%q}`, label, version))
}

// breakerState is the gauge of a breaker's state: 0 closed, 1 half-open,
// 2 open (gobreaker's numbering).
func breakerState(name string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(fmt.Sprintf(`edge_breaker_state{breaker=%q}`, name), nil)
}
