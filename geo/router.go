package geo

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/clientip"
)

// Config configures the failover proxy; it is built in main.
type Config struct {
	Locator *Locator
	// HintHeader names the header a client may set to pick its region.
	HintHeader string
	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// PerTryTimeout bounds one attempt; MaxAttempts bounds the regions
	// tried for one request.
	PerTryTimeout time.Duration
	MaxAttempts   int
	// RetryRatio caps retries at this share of requests (plus a floor of
	// 10 per second), so a global outage does not multiply the load.
	RetryRatio float64
	Logger     *slog.Logger
}

// upstream is one edge.
type upstream struct {
	addr     string
	inflight atomic.Int64
}

// regionPool holds a region's healthy edges and its breaker.
type regionPool struct {
	edges   []*upstream
	breaker *gobreaker.CircuitBreaker[struct{}]
}

// Router proxies predictions to the nearest healthy region.
type Router struct {
	cfg    Config
	log    *slog.Logger
	client *fasthttp.Client
	mu     sync.RWMutex
	pools  map[string]*regionPool
	budget retryBudget
	// draining fails /health/ready during shutdown.
	draining atomic.Bool
}

// SetDraining turns readiness off before a graceful shutdown.
func (r *Router) SetDraining(d bool) { r.draining.Store(d) }

// NewRouter returns a router with no edges yet; feed it with Update.
func NewRouter(cfg Config) *Router {
	if cfg.HintHeader == "" {
		cfg.HintHeader = "X-Region"
	}
	if cfg.PerTryTimeout <= 0 {
		cfg.PerTryTimeout = 500 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryRatio <= 0 {
		cfg.RetryRatio = 0.2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Router{cfg: cfg, log: cfg.Logger.With("component", "geo"), pools: map[string]*regionPool{},
		client: &fasthttp.Client{Name: "sentiment-geo", MaxConnsPerHost: 1024, MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout: cfg.PerTryTimeout, WriteTimeout: cfg.PerTryTimeout,
			Dial: (&fasthttp.TCPDialer{Concurrency: 1000}).Dial}}
	r.budget.ratio = cfg.RetryRatio
	for _, reg := range cfg.Locator.Regions {
		r.pools[reg.Name] = &regionPool{breaker: r.newBreaker(reg.Name)}
	}
	return r
}

func (r *Router) newBreaker(region string) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        region,
		MaxRequests: 1, // one half-open probe
		Interval:    10 * time.Second,
		Timeout:     2 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 5 || c.Requests >= 20 && float64(c.TotalFailures)/float64(c.Requests) > 0.5
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			r.log.Warn("region breaker changed state", "region", name, "from", from.String(), "to", to.String())
			metrics.GetOrCreateGauge(fmt.Sprintf(`geo_breaker_state{region=%q}`, name), nil).Set(float64(to))
		},
	})
}

// Update replaces a region's healthy edges (from Consul). Edges already
// known keep their in-flight counts.
func (r *Router) Update(region string, addrs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pool := r.pools[region]
	if pool == nil {
		return // not a configured region
	}
	old := map[string]*upstream{}
	for _, u := range pool.edges {
		old[u.addr] = u
	}
	edges := make([]*upstream, 0, len(addrs))
	for _, a := range addrs {
		if u := old[a]; u != nil {
			edges = append(edges, u)
		} else {
			edges = append(edges, &upstream{addr: a})
		}
	}
	pool.edges = edges
	metrics.GetOrCreateGauge(fmt.Sprintf(`geo_healthy_edges{region=%q}`, region), nil).Set(float64(len(edges)))
}

// pick chooses an edge by the power of two random choices on in-flight
// requests.
func (r *Router) pick(region string) (*upstream, *gobreaker.CircuitBreaker[struct{}]) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	pool := r.pools[region]
	if pool == nil || len(pool.edges) == 0 {
		return nil, nil
	}
	a := pool.edges[rand.IntN(len(pool.edges))]
	if len(pool.edges) > 1 {
		if b := pool.edges[rand.IntN(len(pool.edges))]; b.inflight.Load() < a.inflight.Load() {
			a = b
		}
	}
	return a, pool.breaker
}

var errUpstream = errors.New("upstream failed")

// retryBudget allows retries up to ratio of requests over a one-second
// window, plus a floor.
type retryBudget struct {
	ratio    float64
	now      func() int64 // unix seconds; nil means the clock
	mu       sync.Mutex
	window   int64
	requests float64
	retries  float64
}

func (b *retryBudget) request() {
	b.mu.Lock()
	b.roll()
	b.requests++
	b.mu.Unlock()
}

func (b *retryBudget) allowRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll()
	if b.retries >= 10+b.ratio*b.requests {
		return false
	}
	b.retries++
	return true
}

func (b *retryBudget) roll() {
	now := time.Now().Unix()
	if b.now != nil {
		now = b.now()
	}
	if now != b.window {
		b.window, b.requests, b.retries = now, 0, 0
	}
}

// Handler returns the router's HTTP handler.
func (r *Router) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch path := string(ctx.Path()); {
		case path == "/health/live" || path == "/health/ready":
			r.health(ctx)
		case path == "/metrics":
			ctx.SetContentType("text/plain; version=0.0.4")
			metrics.WritePrometheus(ctx, true)
		case path == "/v1/route":
			r.route(ctx)
		default:
			r.proxy(ctx)
		}
	}
}

func (r *Router) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	return clientip.Addr(ctx.RemoteIP(), ctx.Request.Header.Peek("X-Forwarded-For"), r.cfg.TrustedProxies)
}

// proxy sends the request to the nearest healthy region, failing over to
// the next on a connect error, timeout or 5xx. Predictions are idempotent,
// so retrying them elsewhere is safe.
func (r *Router) proxy(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	order, _ := r.cfg.Locator.Order(string(ctx.Request.Header.Peek(r.cfg.HintHeader)), r.clientAddr(ctx))
	id := string(ctx.Request.Header.Peek("X-Request-ID"))
	r.budget.request()
	failovers, attempts := 0, 0
	var lastErr error
	for _, region := range order {
		if attempts >= r.cfg.MaxAttempts {
			break
		}
		up, cb := r.pick(region)
		if up == nil || cb.State() == gobreaker.StateOpen {
			continue // no healthy edge, or the breaker is open: skip at once
		}
		if attempts > 0 && !r.budget.allowRetry() {
			lastErr = errors.New("retry budget exhausted")
			break
		}
		attempts++
		t0 := time.Now()
		_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, r.forward(ctx, up, id) })
		regionLatency(region).Update(time.Since(t0).Seconds())
		if err == nil {
			h := &ctx.Response.Header
			h.Set("X-Served-Region", region)
			h.Set("X-Failovers", strconv.Itoa(failovers))
			regionRequests(region, "ok").Inc()
			observe(ctx.Response.StatusCode(), start)
			return
		}
		regionRequests(region, "error").Inc()
		lastErr = err
		failovers++
		failoverTotal.Inc()
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.SetContentType("application/json")
	msg := "no healthy region could answer"
	if lastErr != nil {
		msg += ": " + lastErr.Error()
	}
	ctx.SetBodyString(fmt.Sprintf(`{"error":%q}`+"\n", msg))
	observe(fasthttp.StatusServiceUnavailable, start)
}

// forward proxies one attempt to an edge.
func (r *Router) forward(ctx *fasthttp.RequestCtx, up *upstream, id string) error {
	up.inflight.Add(1)
	defer up.inflight.Add(-1)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	ctx.Request.CopyTo(req)
	req.SetHost(up.addr)
	req.URI().SetScheme("http")
	req.Header.Del("Connection")
	req.Header.Set("X-Forwarded-For", forwardedFor(ctx))
	if id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	resp := &ctx.Response
	if err := r.client.DoTimeout(req, resp, r.cfg.PerTryTimeout); err != nil {
		return fmt.Errorf("%w: %s: %v", errUpstream, up.addr, err)
	}
	if resp.StatusCode() >= 500 {
		return fmt.Errorf("%w: %s answered %d", errUpstream, up.addr, resp.StatusCode())
	}
	return nil
}

func forwardedFor(ctx *fasthttp.RequestCtx) string {
	prior := string(ctx.Request.Header.Peek("X-Forwarded-For"))
	ip := ctx.RemoteIP().String()
	if prior == "" {
		return ip
	}
	return prior + ", " + ip
}

// route answers GET /v1/route: the caller's regions in order, with edges.
func (r *Router) route(ctx *fasthttp.RequestCtx) {
	order, how := r.cfg.Locator.Order(string(ctx.Request.Header.Peek(r.cfg.HintHeader)), r.clientAddr(ctx))
	b := []byte(`{"placed_by":` + strconv.Quote(how) + `,"regions":[`)
	for i, region := range order {
		if i > 0 {
			b = append(b, ',')
		}
		r.mu.RLock()
		pool := r.pools[region]
		state := pool.breaker.State().String()
		b = append(b, `{"region":`+strconv.Quote(region)+`,"breaker":`+strconv.Quote(state)+`,"edges":[`...)
		for j, u := range pool.edges {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, strconv.Quote("http://"+u.addr)...)
		}
		r.mu.RUnlock()
		b = append(b, "]}"...)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, "]}\n"...))
}

func (r *Router) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if string(ctx.Path()) == "/health/ready" {
		if r.draining.Load() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"draining"}` + "\n")
			return
		}
		r.mu.RLock()
		n := 0
		for _, p := range r.pools {
			n += len(p.edges)
		}
		r.mu.RUnlock()
		if n == 0 {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"no healthy edge in any region"}` + "\n")
			return
		}
	}
	ctx.SetBodyString(`{"status":"ok"}` + "\n")
}

var failoverTotal = metrics.NewCounter(`geo_failovers_total`)

func regionRequests(region, result string) *metrics.Counter {
	return metrics.GetOrCreateCounter(fmt.Sprintf(`geo_upstream_requests_total{region=%q,result=%q}`, region, result))
}

func regionLatency(region string) *metrics.PrometheusHistogram {
	return metrics.GetOrCreatePrometheusHistogram(fmt.Sprintf(`geo_upstream_duration_seconds{region=%q}`, region))
}

func observe(code int, start time.Time) {
	metrics.GetOrCreateCounter(fmt.Sprintf(`geo_requests_total{code="%d"}`, code)).Inc()
	metrics.GetOrCreatePrometheusHistogram(`geo_request_duration_seconds`).Update(time.Since(start).Seconds())
}
