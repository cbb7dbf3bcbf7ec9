package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/forward"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// forwardedHeader marks a request an edge forwarded to a peer, so a peer
// that has no model either answers 503 instead of forwarding again.
const forwardedHeader = "X-Sentiment-Forwarded-By"

// Peers forwards predictions to the nearest healthy peer region while this
// edge has no model at all (a cold start with an empty cache and the
// registry down). Each region sits behind its own circuit breaker.
type Peers struct {
	self     string
	order    []string // regions, nearest first
	client   *fasthttp.Client
	scheme   string // of the peers' URLs: http or https
	timeout  time.Duration
	log      *slog.Logger
	mu       sync.RWMutex
	addrs    map[string][]string // region -> passing edges (host:port)
	breakers map[string]*gobreaker.CircuitBreaker[struct{}]
}

// NewPeers returns a forwarder over regions listed nearest first. With
// tlsCfg, peers are reached over https with it.
func NewPeers(self string, order []string, timeout time.Duration, tlsCfg *tls.Config, log *slog.Logger) *Peers {
	if log == nil {
		log = slog.Default()
	}
	p := &Peers{self: self, order: order, timeout: timeout, log: log.With("component", "peers"),
		client:   forward.NewClient("sentiment-edge", timeout, tlsCfg),
		scheme:   "http",
		addrs:    map[string][]string{},
		breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{}}
	if tlsCfg != nil {
		p.scheme = "https"
	}
	for _, region := range order {
		p.breakers[region] = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        "peer-" + region,
			MaxRequests: 1,
			Timeout:     5 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
			OnStateChange: func(name string, from, to gobreaker.State) {
				p.log.Warn("peer breaker changed state", "breaker", name, "from", from.String(), "to", to.String())
				breakerState(name).Set(float64(to))
			},
		})
	}
	return p
}

// Update replaces a region's passing edges (from a Consul watcher).
func (p *Peers) Update(region string, addrs []string) {
	p.mu.Lock()
	p.addrs[region] = addrs
	p.mu.Unlock()
}

var errNoPeer = errors.New("no healthy peer region")

// forward has the nearest healthy peer region answer the request, whose
// answer replaces ctx's. The request is rewritten in place: id must not
// view its header bytes.
func (p *Peers) forward(ctx *fasthttp.RequestCtx, id string, trusted bool, tc tracectx.Context) error {
	if len(ctx.Request.Header.Peek(forwardedHeader)) > 0 {
		return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet (and this request was already forwarded once)")
	}
	forward.Prepare(ctx, id, trusted, "sentiment-edge-"+p.self)
	ctx.Request.Header.Set(forwardedHeader, p.self)
	for _, region := range p.order {
		p.mu.RLock()
		addrs := p.addrs[region]
		p.mu.RUnlock()
		cb := p.breakers[region]
		if len(addrs) == 0 || cb.State() == gobreaker.StateOpen {
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		// The hop to the peer is a span of the edge's trace.
		forward.Attempt(&ctx.Request, p.scheme, addr, tc.Child())
		_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, p.do(ctx, addr) })
		if err == nil {
			peerForwardsOK.Inc()
			forward.MarkServed(&ctx.Response.Header, region)
			return nil
		}
		ctx.Response.Reset()
		peerForwardsBad.Inc()
		p.log.Warn("peer forward failed", "request_id", id, "trace_id", tc.TraceIDString(), "region", region, "err", err)
	}
	return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet and %v", errNoPeer)
}

// do sends the prepared request to one peer; its answer, whole, becomes
// the edge's.
func (p *Peers) do(ctx *fasthttp.RequestCtx, addr string) error {
	if err := p.client.DoTimeout(&ctx.Request, &ctx.Response, p.timeout); err != nil {
		return fmt.Errorf("cannot reach peer %s: %w", addr, err)
	}
	if code := ctx.Response.StatusCode(); code >= 500 {
		return fmt.Errorf("peer %s answered %d", addr, code)
	}
	return nil
}
