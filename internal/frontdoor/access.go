package frontdoor

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// AccessLog writes one line for a sampled share of requests: what was
// asked and answered, how long it took, and the ids that tie it to the
// other hops' lines. It never logs a text, a body or a full client
// address (docs/PRIVACY.md).
type AccessLog struct {
	// Rate is the share of requests logged: 0 none, 1 every one.
	Rate float64
	Log  *slog.Logger
}

// Sample decides whether this request gets a line.
func (a AccessLog) Sample() bool {
	return a.Rate > 0 && (a.Rate >= 1 || rand.Float64() < a.Rate)
}

// Write logs ctx's request and answer; client is the client's address
// (the forwarded one behind a trusted proxy), truncated here; extra adds
// the service's own fields.
func (a AccessLog) Write(ctx *fasthttp.RequestCtx, id string, tc tracectx.Context, client string, start time.Time, extra ...any) {
	a.Log.Info("access", append([]any{"request_id", id, "trace_id", tc.TraceIDString(), "span_id", tc.SpanIDString(),
		"method", string(ctx.Method()), "path", string(ctx.Path()), "status", ctx.Response.StatusCode(),
		"duration_us", time.Since(start).Microseconds(), "client", obs.TruncateIP(client)}, extra...)...)
}

// TraceFrom continues the trace of the request's traceparent with a new
// span, or starts a trace (sampled when the access log samples it) when
// there is none or it is malformed. h is a request a fasthttp server
// parsed with its header names normalised (fasthttp's default).
func TraceFrom(h *fasthttp.RequestHeader, sampled bool) tracectx.Context {
	if tc, ok := tracectx.Parse(h.PeekCanonical(traceKey)); ok {
		return tc.Child()
	}
	return tracectx.New(sampled)
}

// TraceState returns the request's tracestate, the vendors' part of its
// trace context, when the request continues a trace (its traceparent is
// valid). W3C Trace Context passes it on with the trace; beside a
// traceparent that did not parse, it belongs to no trace (nil).
func TraceState(h *fasthttp.RequestHeader) []byte {
	ts := h.PeekCanonical(stateKey)
	if len(ts) == 0 {
		return nil
	}
	if _, ok := tracectx.Parse(h.PeekCanonical(traceKey)); !ok {
		return nil
	}
	return ts
}

// DropOrphanTraceState removes a tracestate that belongs to no trace (see
// TraceState) from a request about to be passed on.
func DropOrphanTraceState(h *fasthttp.RequestHeader) {
	if len(h.PeekCanonical(stateKey)) > 0 && TraceState(h) == nil {
		h.DelBytes(stateKey)
	}
}

var stateKey = []byte("Tracestate")

// traceKey is the traceparent header's name as fasthttp stores it (it
// normalises the names of the requests it parses), so reading and setting
// it skip normalisation on the hot path.
var traceKey = []byte("Traceparent")

// SetTraceHeader puts tc into the traceparent header of an answer.
func SetTraceHeader(h *fasthttp.ResponseHeader, tc tracectx.Context) {
	var buf [tracectx.Len]byte
	h.SetCanonical(traceKey, tc.Append(buf[:0]))
}

// SetTraceRequestHeader puts tc into the traceparent header of a request.
func SetTraceRequestHeader(h *fasthttp.RequestHeader, tc tracectx.Context) {
	var buf [tracectx.Len]byte
	h.SetCanonical(traceKey, tc.Append(buf[:0]))
}
