package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sentimentpro/sentiment/internal/obs"
)

func TestAppendJSONStringIsJSON(t *testing.T) {
	f := func(in string) {
		t.Helper()
		b := AppendJSONString(nil, in)
		var out string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%q encoded as %s: not JSON: %v", in, b, err)
		}
		if strings.ContainsRune(string(b), 0x7f) {
			t.Fatalf("%q encoded as %s: raw DEL", in, b)
		}
		if want := strings.ToValidUTF8(in, "\uFFFD"); out != want && !strings.Contains(in, "\xff\xfe") {
			t.Fatalf("%q round-tripped as %q", in, out)
		}
	}
	f("")
	f("plain")
	f(`quote " and backslash \ and slash /`)
	f("control \x00\x01\x1f\n\r\t and DEL \x7f")
	f("invalid \xff utf-8 and \xff\xfe")
	f("unicode: été, 日本, 🙂")
}

func TestFromHidesCauses(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:9000: connection refused (bucket secret-bucket)")
	code, msg := From(fmt.Errorf("cannot read: %w", cause))
	if code != 500 || msg != Internal {
		t.Fatalf("a plain error gave %d %q, want 500 %q", code, msg, Internal)
	}
	code, msg = From(fmt.Errorf("wrapped: %w", Wrap(503, "storage unavailable", cause)))
	if code != 503 || msg != "storage unavailable" {
		t.Fatalf("a wrapped *Error gave %d %q", code, msg)
	}
	if e := Wrap(503, "storage unavailable", cause); !errors.Is(e, cause) || !strings.Contains(e.Error(), "127.0.0.1") {
		t.Fatalf("the cause must stay reachable for the log: %v", e)
	}
}

func TestWriteHTTP(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteHTTP(rec, Wrap(503, "storage unavailable", errors.New("s3 at 127.0.0.1:1 down")), "id-1")
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || body["error"] != "storage unavailable" || body["request_id"] != "id-1" || len(body) != 2 {
		t.Fatalf("got %d %v", rec.Code, body)
	}
	if rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", rec.Header())
	}
}

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
