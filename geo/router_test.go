package geo

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/geo/regions"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// fakeEdge is a loopback HTTP server standing in for a region's edge in
// router unit tests (the end-to-end test uses real edges).
type fakeEdge struct {
	region string
	ln     net.Listener
	srv    *fasthttp.Server
	status atomic.Int32
	hits   atomic.Int64
	body   atomic.Pointer[string] // the last request body received
}

func startFakeEdge(t *testing.T, region string) *fakeEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEdge{region: region, ln: ln}
	e.status.Store(200)
	e.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		e.hits.Add(1)
		body := string(ctx.Request.Body())
		e.body.Store(&body)
		ctx.SetStatusCode(int(e.status.Load()))
		ctx.SetBodyString(`{"region":"` + region + `","request_id":"` + string(ctx.Request.Header.Peek("X-Request-ID")) + `"}`)
	}}
	go e.srv.Serve(ln)
	t.Cleanup(func() { e.srv.Shutdown() })
	return e
}

func (e *fakeEdge) addr() string { return e.ln.Addr().String() }

func newTestRouter(t *testing.T) (*Router, map[string]*fakeEdge) {
	r := NewRouter(Config{Locator: &Locator{Regions: testRegions, Default: "us-east"}, PerTryTimeout: 300 * time.Millisecond, Logger: quiet})
	edges := map[string]*fakeEdge{}
	for _, reg := range testRegions {
		e := startFakeEdge(t, reg.Name)
		edges[reg.Name] = e
		r.Update(reg.Name, []string{e.addr()})
	}
	return r, edges
}

func do(t *testing.T, h fasthttp.RequestHandler, hint string) (int, string, string, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/predict")
	ctx.Request.Header.Set("X-Request-ID", "req-1")
	if hint != "" {
		ctx.Request.Header.Set("X-Region", hint)
	}
	ctx.Request.SetBodyString(`{"text":"hi"}`)
	h(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body()), string(ctx.Response.Header.Peek("X-Served-Region")), string(ctx.Response.Header.Peek("X-Failovers"))
}

func TestRouterPrefersTheHintedRegion(t *testing.T) {
	r, _ := newTestRouter(t)
	h := r.Handler()
	for _, region := range []string{"us-east", "eu-west", "ap-south"} {
		code, body, served, fo := do(t, h, region)
		if code != 200 || served != region || fo != "0" || !strings.Contains(body, `"region":"`+region+`"`) || !strings.Contains(body, "req-1") {
			t.Errorf("hint %s: %d %s served by %s failovers %s", region, code, body, served, fo)
		}
	}
}

func TestRouterFailsOver(t *testing.T) {
	r, edges := newTestRouter(t)
	h := r.Handler()
	// 5xx from eu-west: the request goes to the next nearest region.
	edges["eu-west"].status.Store(503)
	code, _, served, fo := do(t, h, "eu-west")
	if code != 200 || served == "eu-west" || fo != "1" {
		t.Fatalf("eu-west answering 503: %d served by %s failovers %s", code, served, fo)
	}
	// Both attempts carried the client's body intact.
	for _, region := range []string{"eu-west", served} {
		if b := edges[region].body.Load(); b == nil || *b != `{"text":"hi"}` {
			t.Errorf("%s received body %v, want the client's", region, b)
		}
	}
	// A dead region (connection refused) also fails over; once its breaker
	// opens it is skipped without an attempt.
	edges["us-east"].srv.Shutdown()
	for i := 0; i < 10; i++ {
		if code, _, served, _ := do(t, h, "us-east"); code != 200 || served == "us-east" {
			t.Fatalf("request %d with us-east down: %d served by %s", i, code, served)
		}
	}
	if st := r.pools["us-east"].breaker.State().String(); st != "open" {
		t.Fatalf("us-east breaker %s after 10 failures", st)
	}
	if _, _, served, fo := do(t, h, "us-east"); served != "ap-south" && served != "eu-west" || fo != "0" {
		t.Fatalf("with the breaker open: served by %s, failovers %s (want no attempt on us-east)", served, fo)
	}
	// Everything down: a JSON 503.
	edges["eu-west"].srv.Shutdown()
	edges["ap-south"].srv.Shutdown()
	code, body, _, _ := do(t, h, "us-east")
	if code != 503 || !strings.Contains(body, `"error"`) {
		t.Fatalf("all regions down: %d %s", code, body)
	}
}

func TestRouteEndpoint(t *testing.T) {
	r, edges := newTestRouter(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/route")
	ctx.Request.Header.Set("X-Region", "ap-south")
	r.Handler()(&ctx)
	body := string(ctx.Response.Body())
	if !strings.HasPrefix(body, `{"placed_by":"hint","regions":[{"region":"ap-south"`) || !strings.Contains(body, edges["eu-west"].addr()) {
		t.Fatalf("/v1/route: %s", body)
	}
}

func TestRetryBudget(t *testing.T) {
	now := int64(1000)
	b := retryBudget{ratio: 0.2}
	// A steady 100 requests per second for the whole window.
	for sec := 0; sec < budgetWindow; sec++ {
		for i := 0; i < 100; i++ {
			b.request(now)
		}
		now++
	}
	now--
	allowed := 0
	for i := 0; i < 1000; i++ {
		if b.allowRetry(now) {
			allowed++
		}
	}
	// The floor (10/s over 10 s) plus 20% of 1000 requests, in one burst.
	if allowed != 300 {
		t.Fatalf("%d retries allowed for 1000 requests over the window, want 300", allowed)
	}
	// A refund makes room for one more.
	b.refund(now)
	if !b.allowRetry(now) || b.allowRetry(now) {
		t.Fatal("a refund should allow exactly one more retry")
	}
	// Once the window has passed, the old retries no longer count.
	now += budgetWindow
	if !b.allowRetry(now) {
		t.Fatal("no retry allowed in a fresh window")
	}
}

// TestHopByHopHeadersStop: the router forwards none of RFC 9110's
// hop-by-hop headers, nor the headers Connection names, nor
// Proxy-Authorization, nor Expect; end-to-end headers pass. A request ID
// or X-Forwarded-For the client named in Connection was for the router:
// the edge gets the router's.
func TestHopByHopHeadersStop(t *testing.T) {
	h, ctx := headersAtEdge(t, map[string]string{"Connection": "keep-alive, X-Secret, x-other-secret, X-Request-ID, X-Forwarded-For",
		"X-Secret": "s1", "X-Other-Secret": "s2", "X-Request-ID": "client-id-1", "X-Forwarded-For": "203.0.113.9",
		"Keep-Alive": "timeout=5", "TE": "trailers", "Upgrade": "websocket", "Proxy-Authorization": "Basic c2VjcmV0",
		"Proxy-Connection": "keep-alive", "Trailer": "X-Sum", "X-Kept": "yes", "Expect": "100-continue", "Via": "1.0 corp-proxy"})
	for _, name := range []string{"x-secret", "x-other-secret", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection", "trailer", "expect"} {
		if v, ok := h[name]; ok {
			t.Errorf("%s reached the edge: %q", name, v)
		}
	}
	if h["x-kept"] != "yes" || h["x-forwarded-for"] == "" {
		t.Errorf("end-to-end headers lost: %v", h)
	}
	// A gateway adds itself to Via (RFC 9110 §7.6.3).
	if h["via"] != "1.0 corp-proxy, 1.1 sentiment-geo" {
		t.Errorf("Via at the edge %q, want the client's with the router added", h["via"])
	}
	if id := string(ctx.Response.Header.Peek("X-Request-Id")); h["x-request-id"] != id || id == "" {
		t.Errorf("the edge got request ID %q, the client %q", h["x-request-id"], id)
	}
	if strings.Contains(h["x-forwarded-for"], "203.0.113.9") {
		t.Errorf("X-Forwarded-For %q kept the address the client named in Connection", h["x-forwarded-for"])
	}
}

// TestTraceStateFollowsItsTrace: tracestate, the vendors' part of a W3C
// trace context, reaches the edge with the trace it belongs to, and is
// dropped when the router starts a new trace because the traceparent
// beside it did not parse.
func TestTraceStateFollowsItsTrace(t *testing.T) {
	const parent, state = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE"
	h, _ := headersAtEdge(t, map[string]string{"traceparent": parent, "tracestate": state})
	if h["tracestate"] != state || !strings.Contains(h["traceparent"], "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("a continued trace reached the edge as traceparent %q, tracestate %q", h["traceparent"], h["tracestate"])
	}
	h, _ = headersAtEdge(t, map[string]string{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "tracestate": state})
	if _, ok := h["tracestate"]; ok || h["traceparent"] == "" || strings.Contains(h["traceparent"], "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("a new trace reached the edge as traceparent %q with the old tracestate %q", h["traceparent"], h["tracestate"])
	}
}

// headersAtEdge sends one prediction with these request headers through
// a router to an edge that records the headers it gets (names in lower
// case).
func headersAtEdge(t *testing.T, set map[string]string) (map[string]string, *fasthttp.RequestCtx) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan map[string]string, 1)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := map[string]string{}
		for k, v := range ctx.Request.Header.All() {
			h[strings.ToLower(string(k))] = string(v)
		}
		select {
		case got <- h:
		default:
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	r := NewRouter(Config{Locator: &Locator{Regions: testRegions, Default: "us-east"}, Logger: quiet})
	r.Update("us-east", []string{ln.Addr().String()})
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/predict")
	for k, v := range set {
		ctx.Request.Header.Set(k, v)
	}
	ctx.Request.SetBodyString(`{"text":"hi"}`)
	r.Handler()(ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	return <-got, ctx
}

// TestInternalSurfacesNeedTheToken: with an internal token, /metrics and
// /v1/route answer 401 without it and 200 with it; predictions do not
// need it.
func TestInternalSurfacesNeedTheToken(t *testing.T) {
	r := NewRouter(Config{Locator: &Locator{Regions: testRegions, Default: "us-east"}, InternalToken: "internal-0123456789", Logger: quiet})
	e := startFakeEdge(t, "us-east")
	r.Update("us-east", []string{e.addr()})
	h := r.Handler()
	get := func(path, auth string) int {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		if auth != "" {
			ctx.Request.Header.Set("Authorization", auth)
		}
		h(&ctx)
		return ctx.Response.StatusCode()
	}
	for _, path := range []string{"/metrics", "/v1/route"} {
		for _, auth := range []string{"", "Bearer wrong", "internal-0123456789", "Bearer internal-012345678"} {
			if code := get(path, auth); code != 401 {
				t.Errorf("%s with %q: %d, want 401", path, auth, code)
			}
		}
		for _, auth := range []string{"Bearer internal-0123456789", "bearer internal-0123456789", "BEARER  internal-0123456789"} {
			if code := get(path, auth); code != 200 {
				t.Errorf("%s with %q: %d", path, auth, code)
			}
		}
	}
	if code, _, _, _ := do(t, h, "us-east"); code != 200 {
		t.Errorf("a prediction without the token: %d", code)
	}
}

// TestOwnSurfacesAreReadOnly: the router's own routes answer GET and HEAD
// (RFC 9110 §9.1) and refuse other methods with 405 and Allow (§15.5.6),
// while other paths still go to the edges whatever their method.
func TestOwnSurfacesAreReadOnly(t *testing.T) {
	r, _ := newTestRouter(t)
	h := r.Handler()
	send := func(method, path string) *fasthttp.RequestCtx {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		h(ctx)
		return ctx
	}
	for _, path := range []string{"/health/live", "/health/ready", "/metrics", "/v1/route"} {
		for _, method := range []string{"GET", "HEAD"} {
			if ctx := send(method, path); ctx.Response.StatusCode() != 200 {
				t.Errorf("%s %s: %d, want 200", method, path, ctx.Response.StatusCode())
			}
		}
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			ctx := send(method, path)
			if ctx.Response.StatusCode() != 405 || string(ctx.Response.Header.Peek("Allow")) != "GET, HEAD, OPTIONS" ||
				!strings.Contains(string(ctx.Response.Body()), `"error"`) {
				t.Errorf("%s %s: %d, Allow %q, body %s; want 405 allowing GET, HEAD, OPTIONS", method, path,
					ctx.Response.StatusCode(), ctx.Response.Header.Peek("Allow"), ctx.Response.Body())
			}
		}
		if ctx := send("OPTIONS", path); ctx.Response.StatusCode() != 204 || string(ctx.Response.Header.Peek("Allow")) != "GET, HEAD, OPTIONS" ||
			len(ctx.Response.Header.Peek("X-Request-Id")) == 0 || len(ctx.Response.Header.Peek("X-Content-Type-Options")) == 0 {
			t.Errorf("OPTIONS %s: %d, Allow %q, headers %s; want 204 allowing GET, HEAD, OPTIONS, with the router's headers", path,
				ctx.Response.StatusCode(), ctx.Response.Header.Peek("Allow"), &ctx.Response.Header)
		}
	}
	if ctx := send("DELETE", "/v2/models/sentiment"); string(ctx.Response.Header.Peek("X-Served-Region")) == "" {
		t.Errorf("DELETE on an edge's path did not reach an edge: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	// OPTIONS * is about the router itself (§9.3.7): answered, not relayed.
	if ctx := send("OPTIONS", "*"); ctx.Response.StatusCode() != 204 || len(ctx.Response.Header.Peek("X-Served-Region")) > 0 ||
		len(ctx.Response.Header.Peek("X-Request-Id")) == 0 {
		t.Errorf("OPTIONS *: %d, headers %s; want the router's own 204", ctx.Response.StatusCode(), &ctx.Response.Header)
	}
}

// TestSecurityHeadersOnEveryAnswer: the router's own answers (health,
// 405, 503) carry the security headers, and every answer, an edge's
// included, carries HSTS exactly when the router serves TLS, whatever the
// edge sent. (The rest of an edge's answer is the edge's: edges set them.)
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	for _, tls := range []bool{false, true} {
		r := NewRouter(Config{Locator: &Locator{Regions: testRegions, Default: "us-east"}, PerTryTimeout: 300 * time.Millisecond, TLS: tls, Logger: quiet})
		e := startFakeEdge(t, "us-east") // sets no security header of its own
		r.Update("us-east", []string{e.addr()})
		h := r.Handler()
		for _, c := range []struct {
			method, path string
			own          bool
		}{{"GET", "/health/live", true}, {"POST", "/health/live", true}, {"POST", "/v1/predict", false}} {
			ctx := &fasthttp.RequestCtx{}
			ctx.Request.Header.SetMethod(c.method)
			ctx.Request.SetRequestURI(c.path)
			h(ctx)
			hdr := &ctx.Response.Header
			if (len(hdr.Peek("Strict-Transport-Security")) > 0) != tls || (c.own && (string(hdr.Peek("X-Content-Type-Options")) != "nosniff" ||
				string(hdr.Peek("Cache-Control")) != "no-store" || len(hdr.Peek("Content-Security-Policy")) == 0)) {
				t.Errorf("TLS %v, %s %s: %d with headers\n%s", tls, c.method, c.path, ctx.Response.StatusCode(), hdr.Header())
			}
		}
		e.status.Store(503) // every region fails: the router's own 503
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/predict")
		h(ctx)
		if ctx.Response.StatusCode() != 503 || string(ctx.Response.Header.Peek("X-Frame-Options")) != "DENY" {
			t.Errorf("TLS %v, no region: %d with headers\n%s", tls, ctx.Response.StatusCode(), ctx.Response.Header.Header())
		}
	}
}

// TestHTTP10ClientsDoNotCloseTheEdgeConnection: the router speaks
// HTTP/1.1 to the edge whatever its client spoke, so an HTTP/1.0 request
// (which implies Connection: close) does not make the edge close a
// connection other clients' requests share; the HTTP/1.0 client's own
// connection still closes after its answer.
func TestHTTP10ClientsDoNotCloseTheEdgeConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	protocols := make(chan string, 100)
	edge := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			protocols <- string(ctx.Request.Header.Protocol())
			ctx.SetBodyString(`{"label":"positive"}`)
		},
		ConnState: func(_ net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				conns.Add(1)
			}
		},
	}
	go edge.Serve(ln)
	t.Cleanup(func() { edge.Shutdown() })
	r := NewRouter(Config{Locator: &Locator{Regions: testRegions, Default: "us-east"}, Logger: quiet})
	defer r.Close()
	r.Update("us-east", []string{ln.Addr().String()})
	front := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: r.Handler()}
	go srv.Serve(front)
	t.Cleanup(func() { srv.Shutdown() })

	for i := range 10 {
		c, err := front.Dial()
		if err != nil {
			t.Fatal(err)
		}
		proto := "HTTP/1.1"
		if i%2 == 1 {
			proto = "HTTP/1.0"
		}
		fmt.Fprintf(c, "POST /v1/predict %s\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"text\":\"hi\"}", proto)
		br := bufio.NewReader(c)
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("%s request %d: %v", proto, i, err)
		}
		if resp.StatusCode() != 200 {
			t.Fatalf("%s request %d: %d %s", proto, i, resp.StatusCode(), resp.Body())
		}
		if got := <-protocols; got != "HTTP/1.1" {
			t.Errorf("%s request %d reached the edge as %s, want HTTP/1.1", proto, i, got)
		}
		if proto == "HTTP/1.0" && !resp.ConnectionClose() {
			t.Errorf("the HTTP/1.0 client's connection was not closed after its answer")
		}
		c.Close()
	}
	// The router's pipeline to the edge survived the HTTP/1.0 requests.
	if n := conns.Load(); n > 2 {
		t.Errorf("the edge saw %d connections for 10 requests, 5 of them HTTP/1.0: the router's connection was closed under them", n)
	}
}

// TestGRPCConnectionsFollowTheEdges: a connection to an edge no region
// lists any more is closed and forgotten.
func TestGRPCConnectionsFollowTheEdges(t *testing.T) {
	r := NewRouter(Config{Locator: &Locator{Regions: []regions.Region{{Name: "us-east"}, {Name: "eu-west"}}}, Logger: quiet})
	defer r.Close()
	r.UpdateGRPC("us-east", []string{"127.0.0.1:1"})
	r.UpdateGRPC("eu-west", []string{"127.0.0.1:2"})
	if _, _, err := r.grpcConn("us-east"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.grpcConn("eu-west"); err != nil {
		t.Fatal(err)
	}
	r.UpdateGRPC("us-east", []string{"127.0.0.1:3"})
	r.grpc.mu.RLock()
	_, old := r.grpc.conns["127.0.0.1:1"]
	_, kept := r.grpc.conns["127.0.0.1:2"]
	r.grpc.mu.RUnlock()
	if old || !kept {
		t.Errorf("after us-east's edge moved: old connection kept %v, eu-west's kept %v; want false, true", old, kept)
	}
}
