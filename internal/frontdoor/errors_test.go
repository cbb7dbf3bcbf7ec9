package frontdoor

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sentimentpro/sentiment/internal/obs"
)

func TestParseError(t *testing.T) {
	f := func(err error, want int) {
		t.Helper()
		if got := ParseError(err, 1024); got.Code != want {
			t.Fatalf("%v: %d, want %d", err, got.Code, want)
		}
	}
	f(fasthttp.ErrBodyTooLarge, http.StatusRequestEntityTooLarge)
	f(&fasthttp.ErrSmallBuffer{}, http.StatusRequestHeaderFieldsTooLarge)
	f(fasthttp.ErrTimeout, http.StatusRequestTimeout)
	f(errors.New("cannot parse"), http.StatusBadRequest)
}

// TestErrorHandlerKeepsTheRequestsIDs: a request fasthttp refuses before
// the handler still gets an ID and a trace context, its own when its
// headers were read (a body over the limit), fresh ones when not.
func TestErrorHandlerKeepsTheRequestsIDs(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{
		Handler:            func(ctx *fasthttp.RequestCtx) {},
		ErrorHandler:       ErrorHandler(16, nil),
		MaxRequestBodySize: 16,
		ReadBufferSize:     1024,
	}
	go srv.Serve(ln) //nolint:errcheck // ends with ln.Close
	t.Cleanup(func() { ln.Close() })
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	send := func(header string) (int, string, string) {
		t.Helper()
		c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://x/")
		req.Header.SetMethod("POST")
		req.Header.Set("X-Request-ID", "mine-1")
		req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
		req.Header.Set("X-Pad", header)
		req.SetBodyString(strings.Repeat("x", 100))
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Header.Peek("X-Request-Id")), string(resp.Header.Peek("Traceparent"))
	}
	code, id, tp := send("short")
	if code != 413 || id != "mine-1" || !strings.HasPrefix(tp, "00-"+trace+"-") {
		t.Errorf("body over the limit: %d, X-Request-Id %q, traceparent %q; want 413 with the request's own", code, id, tp)
	}
	code, id, tp = send(strings.Repeat("p", 2000))
	if code != 431 || id == "mine-1" || !obs.ValidRequestID(id) || len(tp) != 55 || strings.Contains(tp, trace) {
		t.Errorf("headers over the buffer: %d, X-Request-Id %q, traceparent %q; want 431 with fresh ones", code, id, tp)
	}
}
