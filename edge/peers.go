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

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/tracectx"
	"github.com/sentimentpro/sentiment/internal/via"
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
	scheme   string // of the peers' URLs: http:// or https://
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
		client:   &fasthttp.Client{ReadTimeout: timeout, WriteTimeout: timeout, MaxIdleConnDuration: 30 * time.Second, TLSConfig: tlsCfg},
		scheme:   "http://",
		addrs:    map[string][]string{},
		breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{}}
	if tlsCfg != nil {
		p.scheme = "https://"
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

func (p *Peers) forward(ctx *fasthttp.RequestCtx, id string, tc tracectx.Context) error {
	if len(ctx.Request.Header.Peek(forwardedHeader)) > 0 {
		return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet (and this request was already forwarded once)")
	}
	for _, region := range p.order {
		p.mu.RLock()
		addrs := p.addrs[region]
		p.mu.RUnlock()
		cb := p.breakers[region]
		if len(addrs) == 0 || cb.State() == gobreaker.StateOpen {
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, p.do(ctx, addr, id, tc) })
		if err == nil {
			peerForwardsOK.Inc()
			ctx.Response.Header.Set("X-Served-By-Region", region)
			return nil
		}
		peerForwardsBad.Inc()
		p.log.Warn("peer forward failed", "request_id", id, "trace_id", tc.TraceIDString(), "region", region, "err", err)
	}
	return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet and %v", errNoPeer)
}

func (p *Peers) do(ctx *fasthttp.RequestCtx, addr, id string, tc tracectx.Context) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethodBytes(ctx.Method())
	req.SetRequestURI(p.scheme + addr + string(ctx.Path()))
	copyHeaders(&req.Header, &ctx.Request.Header, peerRequestHeaders)
	req.Header.Set("X-Request-ID", id)
	req.Header.Set(forwardedHeader, p.self)
	frontdoor.SetTraceRequestHeader(&req.Header, tc.Child()) // the hop to the peer is a span of the edge's
	if ts := frontdoor.TraceState(&ctx.Request.Header); ts != nil {
		req.Header.SetBytesV("tracestate", ts)
	}
	// The peer limits and logs by client too: pass the client on.
	if xff := clientip.AppendForwardedFor(nil, ctx.Request.Header.Peek("X-Forwarded-For"), ctx.RemoteIP()); len(xff) > 0 {
		req.Header.SetBytesV("X-Forwarded-For", xff)
	}
	// The edge is a gateway to its peer (RFC 9110 §7.6.3).
	req.Header.SetBytesV("Via", via.Append(nil, ctx.Request.Header.Peek("Via"), ctx.Request.Header.Protocol(), "sentiment-edge-"+p.self))
	req.SetBody(ctx.PostBody())
	if err := p.client.DoTimeout(req, resp, p.timeout); err != nil {
		return fmt.Errorf("cannot reach peer %s: %w", addr, err)
	}
	if code := resp.StatusCode(); code >= 500 {
		return fmt.Errorf("peer %s answered %d", addr, code)
	}
	ctx.SetStatusCode(resp.StatusCode())
	copyHeaders(&ctx.Response.Header, &resp.Header, peerResponseHeaders)
	ctx.SetBody(resp.Body())
	return nil
}

// The headers a forwarded request and its answer carry besides the
// body: what the body means (an Open Inference Protocol request or answer
// in the binary tensor data extension is JSON followed by tensor bytes)
// and, in a 429, when to come back.
var (
	peerRequestHeaders  = []string{"Content-Type", inferHeaderLength}
	peerResponseHeaders = []string{"Content-Type", inferHeaderLength, "Retry-After"}
)

// header is what fasthttp's request and response headers share.
type header interface {
	Peek(key string) []byte
	SetBytesV(key string, value []byte)
}

func copyHeaders(dst, src header, names []string) {
	for _, name := range names {
		if v := src.Peek(name); len(v) > 0 {
			dst.SetBytesV(name, v)
		}
	}
}
