package frontdoor

import (
	"log/slog"
	"net/netip"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/ratelimit"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// Door is what the fasthttp servers (the edge and the geo router) put in
// front of every request: its ID and trace, the headers every answer
// carries, the per-client rate limit, the sampled access log, and the
// server's own limits (Server).
type Door struct {
	IDs    *obs.RequestIDs
	Access AccessLog
	// TLS says the listener serves TLS: answers carry HSTS.
	TLS bool
	// Limiter is the per-client rate limit (nil: none) of RatePerMinute;
	// Limited counts its refusals.
	Limiter       *ratelimit.Limiter
	RatePerMinute float64
	Limited       *metrics.Counter
	// OwnIDs makes Enter copy the request ID and leave it to Stamp to put
	// on the answer. Without it the ID views the request's or the answer's
	// header bytes (no allocation): valid only while the handler neither
	// rewrites the request's headers nor replaces the answer, which a
	// forwarding hop does.
	OwnIDs bool
}

// Visit is one request as the door saw it.
type Visit struct {
	ID     string
	Trace  tracectx.Context
	Start  time.Time
	Logged bool // the access log samples it
}

// Enter gives the request its ID (the client's valid X-Request-ID, or a
// new one; see requestID for when it goes on the answer), and its trace
// (the client's traceparent continued, or a new one).
func (d *Door) Enter(ctx *fasthttp.RequestCtx) Visit {
	start := ctx.Time() // read by fasthttp just before it called the handler
	if start.IsZero() { // a context no fasthttp.Server made (tests)
		start = time.Now()
	}
	logged := d.Access.Sample()
	return Visit{ID: d.requestID(ctx), Trace: TraceFrom(&ctx.Request.Header, logged), Start: start, Logged: logged}
}

// requestID is the client's valid ID or a new one. Without OwnIDs it is
// set on the answer now and the string views header bytes; with OwnIDs it
// is a copy, and Stamp sets it on the answer once the answer is final (a
// forwarding hop's answer is replaced by the next hop's).
func (d *Door) requestID(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Response.Header
	if v := ctx.Request.Header.PeekCanonical(requestIDKey); len(v) > 0 && obs.ValidRequestID(b2s(v)) {
		if d.OwnIDs {
			return string(v)
		}
		h.SetCanonical(requestIDKey, v)
		return b2s(v)
	}
	var buf [48]byte
	id := d.IDs.Append(buf[:0])
	if d.OwnIDs {
		return string(id)
	}
	h.SetCanonical(requestIDKey, id)
	return b2s(h.PeekCanonical(requestIDKey))
}

// Stamp sets what every answer carries: the request ID (Enter set it,
// unless the answer was replaced since), the trace context and the
// security headers. relayed says the answer is another hop's, replaced
// whole: its request ID is set again, and of the security headers only
// HSTS, which a plain-HTTP hop behind a TLS one lacks. After a
// replacement the visit's ID must be an owned copy.
func (d *Door) Stamp(ctx *fasthttp.RequestCtx, v Visit, relayed bool) {
	h := &ctx.Response.Header
	SetTraceHeader(h, v.Trace)
	if relayed || len(h.PeekCanonical(requestIDKey)) == 0 {
		h.SetCanonical(requestIDKey, s2b(v.ID))
	}
	if !relayed {
		SetSecurityHeaders(h, d.TLS)
	} else if d.TLS {
		SetHSTS(h)
	}
}

// Admit applies client's rate limit: nil, or the 429 to answer (with
// Retry-After set).
func (d *Door) Admit(ctx *fasthttp.RequestCtx, client netip.Addr, now time.Time) error {
	if d.Limiter == nil {
		return nil
	}
	ok, wait := d.Limiter.Allow(client, now)
	if ok {
		return nil
	}
	d.Limited.Inc()
	ctx.Response.Header.Set("Retry-After", ratelimit.RetryAfter(wait))
	return httperr.New(fasthttp.StatusTooManyRequests, "rate limit exceeded: %.0f requests per minute", d.RatePerMinute)
}

// Leave writes the visit's access log line, when it is sampled; extra
// adds the service's own fields.
func (d *Door) Leave(ctx *fasthttp.RequestCtx, v Visit, client netip.Addr, extra ...any) {
	if v.Logged {
		d.Access.Write(ctx, v.ID, v.Trace, client.String(), v.Start, extra...)
	}
}

// Limits are a front door's server settings beyond the common ones.
type Limits struct {
	MaxBodyBytes  int
	MaxConnsPerIP int // 0: no cap
	Concurrency   int // requests at once; 0: fasthttp's default
}

// Server returns the fasthttp.Server of a front door: bodies up to
// MaxBodyBytes, slow clients cut off (10 s to read or write a request, 60 s
// idle), 8 KiB header buffers, no Server header (it names the software to
// a scanner; GET /v2 names it to the clients that ask), and errors fasthttp
// answers itself written as JSON with the security headers.
func (d *Door) Server(h fasthttp.RequestHandler, l Limits, log *slog.Logger) *fasthttp.Server {
	secure := func(ctx *fasthttp.RequestCtx) { SetSecurityHeaders(&ctx.Response.Header, d.TLS) }
	return &fasthttp.Server{Handler: h, ErrorHandler: ErrorHandler(l.MaxBodyBytes, secure), NoDefaultServerHeader: true,
		Logger: ServerLogger{Log: log, Level: slog.LevelDebug}, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxRequestBodySize: l.MaxBodyBytes,
		MaxConnsPerIP: l.MaxConnsPerIP, Concurrency: l.Concurrency, ReadBufferSize: 8 << 10}
}

// requestIDKey is X-Request-ID as fasthttp stores a parsed request's
// header name (normalised), so the hot path skips normalising it again.
var requestIDKey = []byte("X-Request-Id")

// s2b views a string as bytes without copying; the bytes must not be
// written.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// b2s views bytes as a string without copying; the string must not
// outlive the bytes (fasthttp reuses request buffers).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
