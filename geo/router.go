package geo

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/bearer"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/forward"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/ratelimit"
)

// Config configures the failover proxy; it is built in main.
type Config struct {
	Locator *Locator
	// HintHeader names the header a client may set to pick its region.
	HintHeader string
	// TrustedProxies may set X-Forwarded-For and X-Routing-Key.
	TrustedProxies []netip.Prefix
	// PerTryTimeout bounds one attempt; MaxAttempts bounds the regions
	// tried for one request.
	PerTryTimeout time.Duration
	MaxAttempts   int
	// RetryRatio caps retries at this share of requests over a sliding
	// 10-second window (plus a floor of 10 per second), so a global
	// outage does not multiply the load.
	RetryRatio float64
	// RatePerMinute is the per-client limit (0: none) with bursts of up
	// to RateBurst (default: a minute's worth). The client is the peer, or
	// the address a trusted proxy forwarded.
	RatePerMinute float64
	RateBurst     int
	// InternalToken, when set, is the bearer token /metrics, /v1/route and /v1/history
	// require: they tell edge addresses and traffic, which the public port
	// must not.
	InternalToken string
	// EdgeTLS, when set, reaches edges over https with this configuration
	// (their CA, and the router's client certificate for mutual TLS).
	EdgeTLS *tls.Config
	// AccessLogSample is the share of requests given an access log line
	// (0 none, 1 all).
	AccessLogSample float64
	// TLS says the router's own listener serves TLS: its answers then
	// carry Strict-Transport-Security, whatever the edges' do.
	TLS    bool
	Logger *slog.Logger
}

// upstream is one edge.
type upstream struct {
	addr     string
	inflight atomic.Int64
	// pipes carry requests pipelined, one connection per CPU the router
	// may use: under load one write carries several requests and one read
	// several answers, which cuts the hop's system calls
	// (forward.Pipe). After a failure an upstream waits a second before
	// its pipes are used again, so for that long (failedAt) attempts go
	// through the router's plain client, which fails fast.
	pipes    []*forward.Pipe
	next     atomic.Uint32
	failedAt atomic.Int64 // unix nanoseconds of the last failed attempt
}

func (r *Router) newUpstream(addr string) *upstream {
	u := &upstream{addr: addr}
	for range runtime.GOMAXPROCS(0) {
		u.pipes = append(u.pipes, &forward.Pipe{Addr: addr, TLS: r.cfg.EdgeTLS, Timeout: r.cfg.PerTryTimeout})
	}
	return u
}

// pipe returns the upstream's pipes in turn.
func (u *upstream) pipe() *forward.Pipe {
	return u.pipes[int(u.next.Add(1))%len(u.pipes)]
}

// regionPool holds a region's healthy edges, its breaker and its metrics.
type regionPool struct {
	edges   []*upstream
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	ok      *metrics.Counter
	failed  *metrics.Counter
	latency *metrics.PrometheusHistogram
	history *history // the last hour, for the console (history.go)
}

// observe counts one attempt at the region, answered (err nil) or not,
// that started at t0 and ended at end.
func (p *regionPool) observe(t0, end time.Time, err error) {
	seconds := end.Sub(t0).Seconds()
	p.latency.Update(seconds)
	p.history.record(end, seconds, err != nil)
	if err != nil {
		p.failed.Inc()
		return
	}
	p.ok.Inc()
}

func newRegionPool(region string, breaker *gobreaker.TwoStepCircuitBreaker[struct{}], hist *history) *regionPool {
	counter := func(result string) *metrics.Counter {
		return metrics.GetOrCreateCounter(fmt.Sprintf(`geo_upstream_requests_total{region=%q,result=%q}`, region, result))
	}
	return &regionPool{breaker: breaker, ok: counter("ok"), failed: counter("error"), history: hist,
		latency: metrics.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`geo_upstream_duration_seconds{region=%q}`, region), latencyBuckets)}
}

// Router proxies predictions to the nearest healthy region.
type Router struct {
	cfg    Config
	log    *slog.Logger
	client *fasthttp.Client
	mu     sync.RWMutex
	pools  map[string]*regionPool
	budget retryBudget
	// scheme is the edges' URL scheme: http or https.
	scheme string
	door   *frontdoor.Door
	// draining fails /health/ready during shutdown.
	draining atomic.Bool
	// grpc holds the edges' gRPC addresses and connections.
	grpc grpcEdges
}

// EdgeScheme is the scheme edges are reached over: http or https.
func (r *Router) EdgeScheme() string { return r.scheme }

// SetDraining turns readiness off before a graceful shutdown.
func (r *Router) SetDraining(d bool) { r.draining.Store(d) }

// Close stops background work (the rate limiter's sweeper) and closes
// the gRPC connections to edges.
func (r *Router) Close() {
	if r.door.Limiter != nil {
		r.door.Limiter.Close()
	}
	r.grpc.mu.Lock()
	defer r.grpc.mu.Unlock()
	for _, c := range r.grpc.conns {
		c.Close()
	}
	r.grpc.conns, r.grpc.addrs = nil, nil
}

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
		client: forward.NewClient("sentiment-geo", cfg.PerTryTimeout, cfg.EdgeTLS), scheme: "http"}
	if cfg.EdgeTLS != nil {
		r.scheme = "https"
	}
	// The router rewrites the request and relays the edge's answer in
	// place: its request IDs are copies (OwnIDs).
	r.door = &frontdoor.Door{IDs: obs.NewRequestIDs(), Access: frontdoor.AccessLog{Rate: cfg.AccessLogSample, Log: r.log},
		TLS: cfg.TLS, RatePerMinute: cfg.RatePerMinute, Limited: rateLimited, OwnIDs: true}
	r.budget.ratio = cfg.RetryRatio
	if cfg.RatePerMinute > 0 {
		r.door.Limiter = ratelimit.New(cfg.RatePerMinute, cfg.RateBurst)
	}
	for _, reg := range cfg.Locator.Regions {
		hist := new(history)
		r.pools[reg.Name] = newRegionPool(reg.Name, r.newBreaker(reg.Name, hist), hist)
		// Both gauges exist from the start, so dashboards and alerts see
		// every region before anything happens to it.
		breakerGauge(reg.Name).Set(0)
		healthyEdgesGauge(reg.Name).Set(0)
	}
	return r
}

func (r *Router) newBreaker(region string, hist *history) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        region,
		MaxRequests: 1, // one half-open probe
		Interval:    10 * time.Second,
		Timeout:     2 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 5 || c.Requests >= 20 && float64(c.TotalFailures)/float64(c.Requests) > 0.5
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			r.log.Warn("region breaker changed state", "region", name, "from", from.String(), "to", to.String())
			breakerGauge(name).Set(float64(to))
			hist.breakerState(time.Now(), to)
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
			edges = append(edges, r.newUpstream(a))
		}
	}
	pool.edges = edges
	healthyEdgesGauge(region).Set(float64(len(edges)))
}

// pick chooses an edge by the power of two random choices on in-flight
// requests.
func (r *Router) pick(region string) (*upstream, *regionPool) {
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
	return a, pool
}

var errUpstream = errors.New("upstream failed")

// failoversKey is the X-Failovers answer header, in fasthttp's canonical
// form so setting it skips normalising it.
var failoversKey = []byte("X-Failovers")

// Server returns the router's fasthttp.Server: the front door's
// limits (frontdoor.Door.Server) with the router's.
func (r *Router) Server(h fasthttp.RequestHandler, l frontdoor.Limits) *fasthttp.Server {
	return r.door.Server(h, l, r.log)
}

// Handler returns the router's HTTP handler. Every request has an id
// (X-Request-ID, the client's if valid) and a trace (the client's
// traceparent continued, or a new one); both go to the edges on every
// attempt and back in every answer, errors included.
func (r *Router) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		v := r.door.Enter(ctx)
		relayed := false
		switch string(ctx.Path()) {
		case "/health/live", "/health/ready", "/metrics", "/v1/route", "/v1/history":
			r.own(ctx, v.ID)
		default:
			if ctx.IsOptions() && string(ctx.RequestURI()) == "*" {
				// OPTIONS * asks about this server, not a resource
				// (RFC 9110 §9.3.7): nothing to forward.
				ctx.SetStatusCode(fasthttp.StatusNoContent)
				break
			}
			relayed = r.proxy(ctx, v)
		}
		// The router's own answers (health, 405, 429, 503) need the
		// security headers; an edge's answer has them already, but not
		// HSTS if the edge is plain HTTP.
		r.door.Stamp(ctx, v, relayed)
		if v.Logged {
			h := &ctx.Response.Header
			r.door.Leave(ctx, v, r.clientAddr(ctx), "region", string(h.Peek(forward.ServedRegion)), "failovers", string(h.Peek("X-Failovers")))
		}
	}
}

// own answers the router's own surfaces. They are read-only: GET and
// HEAD (RFC 9110 §9.1; fasthttp drops a HEAD answer's content), OPTIONS
// (204 with Allow, §9.3.7, as the edges answer it), and 405 with Allow
// for any other method.
func (r *Router) own(ctx *fasthttp.RequestCtx, id string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD, OPTIONS")
		if ctx.IsOptions() {
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			return
		}
		frontdoor.WriteError(ctx, httperr.New(fasthttp.StatusMethodNotAllowed, "method %s not allowed on %s", ctx.Method(), ctx.Path()), id)
		return
	}
	switch string(ctx.Path()) {
	case "/health/live", "/health/ready":
		r.health(ctx)
	case "/metrics":
		if r.internal(ctx, id) {
			frontdoor.MetricsHandler(ctx)
		}
	case "/v1/route":
		if r.internal(ctx, id) {
			r.route(ctx)
		}
	case "/v1/history":
		if r.internal(ctx, id) {
			r.historyRoute(ctx)
		}
	}
}

// internal reports whether ctx may see an internal surface; if not, it
// answers 401.
func (r *Router) internal(ctx *fasthttp.RequestCtx, id string) bool {
	if r.cfg.InternalToken == "" {
		return true
	}
	got, ok := bearer.Token(string(ctx.Request.Header.Peek("Authorization")))
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(r.cfg.InternalToken)) == 1 {
		return true
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="sentiment-geo internal"`)
	frontdoor.WriteError(ctx, httperr.New(fasthttp.StatusUnauthorized, "this endpoint needs the internal bearer token"), id)
	return false
}

func (r *Router) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	return clientip.Addr(ctx.RemoteIP(), ctx.Request.Header.Peek("X-Forwarded-For"), r.cfg.TrustedProxies)
}

// proxy sends the request to the nearest healthy region, failing over to
// the next on a connect error, timeout or 5xx. Predictions are idempotent,
// so retrying them elsewhere is safe. The client's request is forwarded
// in place (fasthttp keeps it intact across attempts), so the hop copies
// nothing but the response. It reports whether the answer is an edge's.
func (r *Router) proxy(ctx *fasthttp.RequestCtx, v frontdoor.Visit) (relayed bool) {
	req := &ctx.Request
	id, tc, start := v.ID, v.Trace, v.Start
	client := r.clientAddr(ctx)
	// One bucket per client at this router, whatever region it asks for:
	// hopping regions with the hint does not multiply it.
	if err := r.door.Admit(ctx, client, start); err != nil {
		frontdoor.WriteError(ctx, err, id)
		observe(fasthttp.StatusTooManyRequests, time.Since(start))
		return false
	}
	order, _ := r.cfg.Locator.Order(string(req.Header.Peek(r.cfg.HintHeader)), client)
	forward.Prepare(ctx, id, clientip.InAny(clientip.Of(ctx.RemoteIP()), r.cfg.TrustedProxies), "sentiment-geo")
	sec := start.Unix()
	r.budget.request(sec)
	failovers, attempts := 0, 0
	var lastErr error
	for _, region := range order {
		if attempts >= r.cfg.MaxAttempts {
			break
		}
		up, pool := r.pick(region)
		if up == nil {
			continue // no healthy edge: skip at once
		}
		done, verdict := r.admit(pool, attempts, sec)
		if verdict == stopTrying {
			lastErr = errors.New("retry budget exhausted")
			break
		}
		if verdict == skipRegion {
			continue
		}
		attempts++
		t0 := start // the clock is read once per attempt, not per step
		if attempts > 1 {
			t0 = time.Now()
		}
		// Each attempt is a span of the request's trace.
		forward.Attempt(req, r.scheme, up.addr, tc.Child())
		err := r.forward(ctx, up, t0)
		done(err)
		end := time.Now()
		pool.observe(t0, end, err)
		if err == nil {
			h := &ctx.Response.Header
			forward.MarkServed(h, region)
			var buf [4]byte
			h.SetCanonical(failoversKey, strconv.AppendInt(buf[:0], int64(failovers), 10))
			observe(ctx.Response.StatusCode(), end.Sub(start))
			return true
		}
		r.log.Debug("attempt failed; failing over", "request_id", id, "trace_id", tc.TraceIDString(), "region", region, "err", err)
		lastErr = err
		failovers++
		failoverTotal.Inc()
	}
	ctx.Response.Reset()
	// Which edges failed and how is for the log, not for the client.
	r.log.Debug("no region answered", "request_id", id, "trace_id", tc.TraceIDString(), "attempts", attempts, "err", lastErr)
	frontdoor.WriteError(ctx, httperr.Wrap(fasthttp.StatusServiceUnavailable, "no healthy region could answer", lastErr), id)
	observe(fasthttp.StatusServiceUnavailable, time.Since(start))
	return false
}

// Verdicts of admit.
const (
	tryRegion = iota
	skipRegion
	stopTrying
)

// admit decides whether a request that made attempts so far tries pool's
// region: its breaker must allow it and, for a retry, the retry budget.
// An open breaker, or one whose half-open probe is out, skips the region
// without spending a retry. done reports the attempt's outcome.
func (r *Router) admit(pool *regionPool, attempts int, sec int64) (done func(error), verdict int) {
	if attempts > 0 {
		if pool.breaker.State() == gobreaker.StateOpen {
			return nil, skipRegion
		}
		if !r.budget.allowRetry(sec) {
			return nil, stopTrying
		}
	}
	done, err := pool.breaker.Allow()
	if err != nil {
		if attempts > 0 {
			r.budget.refund(sec)
		}
		return nil, skipRegion
	}
	return done, tryRegion
}

// forward proxies one attempt to an edge. X-Request-ID and the rest of the
// client's headers travel unchanged.
func (r *Router) forward(ctx *fasthttp.RequestCtx, up *upstream, now time.Time) error {
	up.inflight.Add(1)
	defer up.inflight.Add(-1)
	req, resp := &ctx.Request, &ctx.Response
	var err error
	if now.UnixNano()-up.failedAt.Load() < int64(time.Second) {
		err = r.client.DoTimeout(req, resp, r.cfg.PerTryTimeout)
	} else {
		err = up.pipe().Do(req, resp, now)
	}
	if err != nil {
		up.failedAt.Store(time.Now().UnixNano())
		return fmt.Errorf("%w: %s: %v", errUpstream, up.addr, err)
	}
	if resp.StatusCode() >= 500 {
		return fmt.Errorf("%w: %s answered %d", errUpstream, up.addr, resp.StatusCode())
	}
	return nil
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
			b = append(b, strconv.Quote(r.scheme+"://"+u.addr)...)
		}
		r.mu.RUnlock()
		b = append(b, "]}"...)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, "]}\n"...))
}

// Ready reports whether the router can route: not draining, and some
// region has a healthy edge.
func (r *Router) Ready() bool {
	if r.draining.Load() {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.pools {
		if len(p.edges) > 0 {
			return true
		}
	}
	return false
}

func (r *Router) health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if string(ctx.Path()) == "/health/ready" {
		if r.draining.Load() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"draining"}` + "\n")
			return
		}
		if !r.Ready() {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(`{"status":"no healthy edge in any region"}` + "\n")
			return
		}
	}
	ctx.SetBodyString(`{"status":"ok"}` + "\n")
}

var (
	rateLimited   = metrics.NewCounter(`geo_rate_limited_total`)
	failoverTotal = metrics.NewCounter(`geo_failovers_total`)
	// latencyBuckets start at 100 µs: the hop costs tens of microseconds
	// on top of the edge's.
	latencyBuckets  = obs.LatencyBuckets(100e-6)
	requestDuration = metrics.NewPrometheusHistogramExt(`geo_request_duration_seconds`, latencyBuckets)
	// requestsByCode caches geo_requests_total{code} by status code.
	requestsByCode [600]atomic.Pointer[metrics.Counter]
)

// breakerGauge is a region breaker's state: 0 closed, 1 half-open, 2 open.
func breakerGauge(region string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(fmt.Sprintf(`geo_breaker_state{region=%q}`, region), nil)
}

func healthyEdgesGauge(region string) *metrics.Gauge {
	return metrics.GetOrCreateGauge(fmt.Sprintf(`geo_healthy_edges{region=%q}`, region), nil)
}

func observe(code int, took time.Duration) {
	requestDuration.Update(took.Seconds())
	if code < 100 || code >= len(requestsByCode) {
		code = 599
	}
	c := requestsByCode[code].Load()
	if c == nil {
		c = metrics.GetOrCreateCounter(fmt.Sprintf(`geo_requests_total{code="%d"}`, code))
		requestsByCode[code].Store(c)
	}
	c.Inc()
}
