package frontdoor

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
)

// ParseError maps the error fasthttp reports for a request it could not
// read: 413 for a body over the server's limit (maxBody bytes), 431 for headers larger
// than its read buffer, 408 for a client too slow to send, 400 otherwise.
func ParseError(err error, maxBody int) *httperr.Error {
	var small *fasthttp.ErrSmallBuffer
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return httperr.Wrap(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody), err)
	case errors.As(err, &small):
		return httperr.Wrap(http.StatusRequestHeaderFieldsTooLarge, "request headers too large", err)
	case errors.As(err, &timeout) && timeout.Timeout():
		return httperr.Wrap(http.StatusRequestTimeout, "request not received in time", err)
	}
	return httperr.Wrap(http.StatusBadRequest, "malformed request", err)
}

// ErrorHandler returns the fasthttp.Server ErrorHandler every fasthttp
// service uses: the parse error as a JSON error with the request's ID and
// trace context when its headers were read, else a fresh ID and trace,
// like every other answer. maxBody is the server's
// MaxRequestBodySize; decorate, if set, adds the service's own headers
// (e.g. security headers).
func ErrorHandler(maxBody int, decorate func(*fasthttp.RequestCtx)) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		ctx.Response.Reset()
		if decorate != nil {
			decorate(ctx)
		}
		// The request's headers may have been read (a body over the
		// limit): then its valid ID and trace context carry on.
		id := string(ctx.Request.Header.Peek("X-Request-Id"))
		if !obs.ValidRequestID(id) {
			id = obs.NewRequestID()
		}
		ctx.Response.Header.Set("X-Request-Id", id)
		SetTraceHeader(&ctx.Response.Header, TraceFrom(&ctx.Request.Header, false))
		WriteError(ctx, ParseError(err, maxBody), id)
	}
}
