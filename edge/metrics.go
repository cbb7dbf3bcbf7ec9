package edge

import (
	"fmt"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/obs"
)

var (
	modelLoaded = metrics.NewGauge(`edge_model_loaded`, nil) // 1 once a model is served
	modelSwaps  = metrics.NewCounter(`edge_model_swaps_total`)
	rateLimited = metrics.NewCounter(`edge_rate_limited_total`)
	// rolloutUncounted counts requests answered during a rollout but left
	// out of its figures: their client was past -rollout-client-rate.
	rolloutUncounted = metrics.NewCounter(`edge_rollout_uncounted_requests_total`)
	// predictErrors counts batches a model failed to predict (500).
	predictErrors = metrics.NewCounter(`edge_predict_errors_total`)
	modelLoadsOK  = metrics.NewCounter(`edge_model_loads_total{result="ok"}`)
	modelLoadsBad = metrics.NewCounter(`edge_model_loads_total{result="rejected"}`)
	modelLoadTime = metrics.NewPrometheusHistogram(`edge_model_load_duration_seconds`)
	// onnxUnavailable counts ONNX bundles refused because this edge has
	// no ONNX Runtime.
	onnxUnavailable = metrics.NewCounter(`edge_model_rejected_total{reason="onnxruntime_unavailable"}`)
	syncErrors      = metrics.NewCounter(`edge_registry_errors_total`)
	peerForwardsOK  = metrics.NewCounter(`edge_peer_forwards_total{result="ok"}`)
	peerForwardsBad = metrics.NewCounter(`edge_peer_forwards_total{result="error"}`)
	// lastSync is when the syncer last heard from the registry and applied
	// (or kept) what it resolved: alerts compare it with time().
	lastSync = metrics.NewGauge(`edge_model_sync_last_success_timestamp_seconds`, nil)
)

// modelInfo is the edge_model_info series of each model's serving
// version: one series per model with value 1, replaced on every swap, so
// dashboards can count edges per version and region (the region is the
// scrape target's label).
var modelInfo struct {
	mu     sync.Mutex
	byName map[string]string // model -> its series
}

func setModelInfo(sv *Serving) {
	name := fmt.Sprintf(`edge_model_info{model=%q,version=%q,digest=%q,source=%q,platform=%q}`,
		sv.Name, sv.Version, sv.Digest, sv.Source, sv.Predictor.Platform())
	modelInfo.mu.Lock()
	defer modelInfo.mu.Unlock()
	if modelInfo.byName == nil {
		modelInfo.byName = map[string]string{}
	}
	if old := modelInfo.byName[sv.Name]; old != "" && old != name {
		metrics.UnregisterMetric(old)
	}
	modelInfo.byName[sv.Name] = name
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
		latency:  metrics.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`edge_request_duration_seconds{route=%q}`, route), latencyBuckets),
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
	requests  *metrics.Counter
	errors    *metrics.Counter
	latency   *metrics.PrometheusHistogram
	labels    []*metrics.Counter // by label index
	score     *metrics.PrometheusHistogram
	textBytes *metrics.PrometheusHistogram
}

// served records one prediction request this version answered.
func (m *monitor) served(code int, seconds float64) {
	m.requests.Inc()
	if code >= 500 {
		m.errors.Inc()
	}
	m.latency.Update(seconds)
}

func newMonitor(model string, labels []string, version string) monitor {
	m := monitor{labels: make([]*metrics.Counter, len(labels))}
	mv := fmt.Sprintf(`model=%q,version=%q`, model, version)
	m.requests = metrics.GetOrCreateCounter(`edge_version_requests_total{` + mv + `}`)
	m.errors = metrics.GetOrCreateCounter(`edge_version_errors_total{` + mv + `}`)
	m.latency = metrics.GetOrCreatePrometheusHistogramExt(`edge_version_request_duration_seconds{`+mv+`}`, latencyBuckets)
	for i := range m.labels {
		m.labels[i] = metrics.GetOrCreateCounter(fmt.Sprintf(`edge_predictions_total{label=%q,%s}`, labels[i], mv))
	}
	m.score = metrics.GetOrCreatePrometheusHistogramExt(`edge_prediction_score_ratio{`+mv+`}`, scoreBuckets)
	m.textBytes = metrics.GetOrCreatePrometheusHistogramExt(`edge_prediction_text_bytes{`+mv+`}`, textBytesBuckets)
	return m
}

// breakerState is the gauge of a breaker's state: 0 closed, 1 half-open,
// 2 open (gobreaker's numbering).
func breakerState(name string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(fmt.Sprintf(`edge_breaker_state{breaker=%q}`, name), nil)
}

// batcherSeries are a queued predictor's counters (an ONNX model's
// batcher), per model and version, read at each scrape.
func batcherSeries(model, version string) []string {
	mv := fmt.Sprintf(`{model=%q,version=%q}`, model, version)
	return []string{`edge_batcher_runs_total` + mv, `edge_batcher_texts_total` + mv, `edge_batcher_overloaded_total` + mv, `edge_batcher_queue_length` + mv}
}

func registerBatcher(model, version string, b batcher) {
	series := batcherSeries(model, version)
	metrics.GetOrCreateGauge(series[0], func() float64 { return float64(b.Stats().Batches) })
	metrics.GetOrCreateGauge(series[1], func() float64 { return float64(b.Stats().Texts) })
	metrics.GetOrCreateGauge(series[2], func() float64 { return float64(b.Stats().Rejected) })
	metrics.GetOrCreateGauge(series[3], func() float64 { return float64(b.QueueLength()) })
}

func unregisterBatcher(model, version string) {
	for _, name := range batcherSeries(model, version) {
		metrics.UnregisterMetric(name)
	}
}
