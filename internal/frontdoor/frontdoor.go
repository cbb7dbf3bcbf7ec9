// Package frontdoor is what every answer of the fasthttp servers (the edge
// and the geo router) shares: the trace context, the security headers,
// JSON errors (the server's own refusals too), the sampled access log,
// the mutual-TLS gate, the metrics page and the server's log. The
// transport-neutral parts (request IDs, the error type, the header list)
// live in internal/obs, internal/httperr and internal/sechdr, which the
// net/http registry shares without linking fasthttp.
package frontdoor

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/sechdr"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// SetSecurityHeaders sets the security headers on h, and
// Strict-Transport-Security when tls (sechdr lists them).
func SetSecurityHeaders(h *fasthttp.ResponseHeader, tls bool) {
	for _, kv := range sechdr.Headers {
		h.SetCanonical(kv[0], kv[1])
	}
	if tls {
		SetHSTS(h)
	}
}

// SetHSTS sets Strict-Transport-Security alone: for an answer relayed
// from a service that set the rest, over TLS it did not terminate.
func SetHSTS(h *fasthttp.ResponseHeader) { h.SetCanonical(sechdr.HSTS[0], sechdr.HSTS[1]) }

// WriteError writes err's status and body to a fasthttp response. A 503
// gets Retry-After: 1.
func WriteError(ctx *fasthttp.RequestCtx, err error, id string) {
	code, msg := httperr.From(err)
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	if code == http.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	ctx.SetBody(httperr.AppendBody(make([]byte, 0, 64+len(msg)+len(id)), msg, id))
}

// RequireClientCert wraps h so that, when s is mutual, a request without
// a verified client certificate gets 403, except a health probe.
func RequireClientCert(s tlsfiles.Server, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if !s.Mutual() {
		return h
	}
	return func(ctx *fasthttp.RequestCtx) {
		if tlsfiles.Verified(ctx.TLSConnectionState()) || tlsfiles.Exempt(string(ctx.Path())) {
			h(ctx)
			return
		}
		id := string(ctx.Request.Header.Peek("X-Request-ID"))
		if !obs.ValidRequestID(id) {
			id = obs.NewRequestID()
		}
		ctx.Response.Header.Set("X-Request-Id", id)
		SetSecurityHeaders(&ctx.Response.Header, true)
		WriteError(ctx, httperr.New(fasthttp.StatusForbidden, tlsfiles.NeedCert), id)
	}
}

// MetricsHandler serves the process's metrics in Prometheus' text format.
func MetricsHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4")
	metrics.WritePrometheus(ctx, true)
}

// ExportOpenConnections publishes srv's open connections as the gauge
// name. Each open connection holds one of the server's goroutines, idle
// keep-alive ones too, so a leak check can tell a leaked goroutine from a
// connection a client keeps. Call it once per process.
func ExportOpenConnections(name string, srv *fasthttp.Server) {
	metrics.NewGauge(name, func() float64 { return float64(srv.GetOpenConnectionsCount()) })
}

// ServerLogger is the Logger of a fasthttp server. fasthttp's messages
// about connections it could not serve carry the client's address and a
// snippet of the raw request (tokens and texts included), so only the
// message's format is logged, never its arguments.
type ServerLogger struct {
	Log   *slog.Logger
	Level slog.Level
}

// Printf logs the format string alone.
func (l ServerLogger) Printf(format string, _ ...any) {
	l.Log.Log(context.Background(), l.Level, "fasthttp: "+format)
}
