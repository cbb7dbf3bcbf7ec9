package edge

import (
	"bufio"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
)

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

func defaultServing(t testing.TB) *Serving {
	m, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &Serving{Predictor: m, Name: "sentiment", Version: "v1", Digest: m.Digest(), Source: "embedded"}
}

// startMem serves srv on an in-memory listener and returns a client for it.
func startMem(t testing.TB, srv *Server) *fasthttp.Client {
	ln := fasthttputil.NewInmemoryListener()
	fs := srv.FastHTTPServer()
	go fs.Serve(ln)
	t.Cleanup(func() { fs.Shutdown(); srv.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

type reply struct {
	code int
	body string
	hdr  *fasthttp.ResponseHeader
}

func call(t testing.TB, c *fasthttp.Client, method, path, body string, headers ...string) reply {
	r, err := try(c, method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is call that returns the client's error.
func try(c *fasthttp.Client, method, path, body string, headers ...string) (reply, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://edge" + path)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != "" {
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		return reply{}, err
	}
	h := &fasthttp.ResponseHeader{}
	resp.Header.CopyTo(h)
	return reply{resp.StatusCode(), string(resp.Body()), h}, nil
}

func newTestServer(t testing.TB, cfg Config) (*Server, *fasthttp.Client) {
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Region == "" {
		cfg.Region = "eu-west"
	}
	srv := NewServer(cfg)
	srv.Swap(defaultServing(t))
	return srv, startMem(t, srv)
}

func TestPredict(t *testing.T) {
	_, c := newTestServer(t, Config{})
	r := call(t, c, "POST", "/v1/predict", `{"text":"a wonderful, moving film","explain":true}`, "X-Request-ID", "req-123")
	var got struct {
		Label, Model, Version, Region, RequestID string
		Score                                    float64
		Explain                                  []inference.Contribution
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != 200 {
		t.Fatalf("%d %s (%v)", r.code, r.body, err)
	}
	if got.Label != "positive" || got.Score < 0.5 || got.Model != "sentiment" || got.Version != "v1" || got.Region != "eu-west" ||
		len(got.Explain) != 5 || string(r.hdr.Peek("X-Request-Id")) != "req-123" {
		t.Fatalf("prediction %+v, headers %s", got, r.hdr)
	}
	if !strings.Contains(r.body, `"request_id":"req-123"`) {
		t.Fatalf("request ID not echoed: %s", r.body)
	}
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"} {
		if len(r.hdr.Peek(h)) == 0 {
			t.Errorf("missing security header %s", h)
		}
	}
	if len(r.hdr.Peek("Strict-Transport-Security")) != 0 {
		t.Error("HSTS on a plain-HTTP edge")
	}
	r = call(t, c, "POST", "/v1/predict/batch", `{"texts":["great fun","a boring mess"]}`)
	if r.code != 200 || !strings.Contains(r.body, `"predictions":[{"label":"positive"`) || !strings.Contains(r.body, `{"label":"negative"`) {
		t.Fatalf("batch: %d %s", r.code, r.body)
	}
	// A generated request ID is returned when the client sent none (or a bad one).
	r = call(t, c, "POST", "/v1/predict", `{"text":"ok"}`, "X-Request-ID", "bad id with spaces")
	id := string(r.hdr.Peek("X-Request-Id"))
	if id == "" || strings.Contains(id, " ") || !strings.Contains(r.body, `"request_id":"`+id+`"`) {
		t.Fatalf("generated request ID %q, body %s", id, r.body)
	}
	// An error answer carries the same ID in its header and body, for a
	// generated ID and a client's.
	for _, hdr := range [][]string{nil, {"X-Request-ID", "client-7"}} {
		r = call(t, c, "POST", "/v1/predict", `{"txt":"typo"}`, hdr...)
		id := string(r.hdr.Peek("X-Request-Id"))
		if r.code != 400 || id == "" || !strings.Contains(r.body, id) || (hdr != nil && id != "client-7") {
			t.Errorf("error answer: %d, X-Request-Id %q, body %s", r.code, id, r.body)
		}
	}
}

func TestBadInputs(t *testing.T) {
	_, c := newTestServer(t, Config{MaxBodyBytes: 4096, MaxTextBytes: 100, MaxBatch: 3})
	long := strings.Repeat("a", 101)
	huge := strings.Repeat("a", 5000)
	cases := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"POST", "/v1/predict", `{"text":`, 400, "invalid JSON"},
		{"POST", "/v1/predict", ``, 400, "invalid JSON"},
		{"POST", "/v1/predict", `["text"]`, 400, "JSON object"},
		{"POST", "/v1/predict", `{"text":"ok"} trailing`, 400, "invalid JSON"},
		{"POST", "/v1/predict", `{}`, 400, `missing \"text\"`},
		{"POST", "/v1/predict", `{"text":5}`, 400, "must be a string"},
		{"POST", "/v1/predict", `{"text":"ok","explain":"yes"}`, 400, "true or false"},
		{"POST", "/v1/predict", `{"text":"ok","lang":"en"}`, 400, `unknown field \"lang\"`},
		{"POST", "/v1/predict", `{"text":"   "}`, 400, "empty"},
		{"POST", "/v1/predict", `{"text":"` + long + `"}`, 400, "100-byte limit"},
		{"POST", "/v1/predict", "{\"text\":\"bad \xff\"}", 400, "UTF-8"},
		{"POST", "/v1/predict", `{"text":"` + huge + `"}`, 413, "larger than 4096"},
		{"GET", "/v1/predict", ``, 405, "not allowed"},
		{"POST", "/v1/nope", `{}`, 404, "no route"},
		{"POST", "/v1/predict/batch", `{"texts":[]}`, 400, "1 to 3"},
		{"POST", "/v1/predict/batch", `{"texts":["a","b","c","d"]}`, 413, "at most 3"},
		{"POST", "/v1/predict/batch", `{"texts":"a"}`, 400, "array of strings"},
		{"POST", "/v1/predict/batch", `{"texts":["a",1]}`, 400, "texts[1] is not a string"},
		{"POST", "/v1/predict/batch", `{"texts":["a",""]}`, 400, "texts[1] is empty"},
		{"POST", "/v1/predict/batch", `{"text":["a"]}`, 400, "unknown field"},
		{"POST", "/v2/models/other/infer", `{}`, 404, `model \"other\" not found`},
		{"POST", "/v2/models/sentiment/versions/v9/infer", `{}`, 404, `version \"v9\"`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[]}`, 400, "exactly 1 input"},
		// A name twice: parsers differ on which counts, so neither does.
		{"POST", "/v1/predict", `{"text":"awful","text":"wonderful"}`, 400, `field \"text\" appears twice`},
		{"POST", "/v1/predict/batch", `{"texts":["a"],"texts":["b"]}`, 400, `field \"texts\" appears twice`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"],"shape":[2]}]}`, 400, `field \"shape\" appears twice`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"parameters":{"binary_data_output":true,"binary_data_output":false}}`, 400, "appears twice"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"FP32","data":[1]}]}`, 400, "BYTES"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","data":["a"]}]}`, 400, "shape says 2"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":[1]}]}`, 400, "must hold strings"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[4],"datatype":"BYTES","data":["a","b","c","d"]}]}`, 413, "at most 3"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[-1],"datatype":"BYTES","data":["a"]}]}`, 400, "non-negative"},
		// The product of these dimensions wraps to 1 in 64 bits: it must
		// not pass as a shape that holds one text.
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[3,4611686018427387909,3381903080180084463],"datatype":"BYTES","data":["a"]}]}`, 413, "at most 3"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"shape":[1],"datatype":"BYTES","data":["a"]}]}`, 400, "needs name"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"prob"}]}`, 400, "unknown output"},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"label"},{"name":"score"},{"name":"label"}]}`, 400, `outputs[2]: output \"label\" is requested twice`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"],"extra":1}]}`, 400, "unknown field"},
		{"POST", "/v2/models/sentiment/infer", `{"id":7,"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}]}`, 400, `\"id\" must be a string`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"data":["a"]}]}`, 400, "needs name, datatype"},
		{"POST", "/v2/models/sentiment/infer", `{"parameters":{"priority":1},"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}]}`, 400, `\"priority\" is not supported`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"label","parameters":{"classification":2}}]}`, 400, `\"classification\" is not supported`},
		{"POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}`, 400, "binary_data_size is 9 but 0 bytes"},
		{"GET", "/v2/models/other", ``, 404, "not found"},
		{"GET", "/v2/models/sentiment/versions/v9/ready", ``, 404, "not found"},
		{"GET", "/v2/models/other/config", ``, 404, "not found"},
		{"GET", "/v2/models/sentiment/versions/v9/config", ``, 404, "not found"},
	}
	for _, tc := range cases {
		r, err := try(c, tc.method, tc.path, tc.body)
		if err != nil && tc.code == 413 && strings.Contains(tc.contains, "larger than") {
			// The server answers an oversized body before reading it and
			// closes: a client still sending may see the close instead
			// (docs/RELIABILITY.md).
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		var e struct{ Error string }
		if r.code != tc.code || json.Unmarshal([]byte(r.body), &e) != nil || e.Error == "" || !strings.Contains(r.body, tc.contains) {
			t.Errorf("%s %s %.40q: %d %s; want %d with a JSON error mentioning %q", tc.method, tc.path, tc.body, r.code, r.body, tc.code, tc.contains)
		}
	}
}

// TestRouterAnswers: the answers the router gives itself (404, 405,
// OPTIONS) carry what every answer carries, the request ID, the trace
// context and the security headers; a near-miss path gets a 404 naming
// it, not a redirect built from the client's Host header.
func TestRouterAnswers(t *testing.T) {
	_, c := newTestServer(t, Config{})
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"OPTIONS", "/v1/predict", 204, "OPTIONS, POST"},
		{"OPTIONS", "/health/ready", 204, "GET, HEAD, OPTIONS"},
		{"DELETE", "/health/ready", 405, "GET, HEAD, OPTIONS"},
		{"POST", "/v1/predict/", 404, ""},
		{"GET", "/HEALTH/live", 404, ""},
		{"OPTIONS", "/nowhere", 404, ""},
	} {
		r := call(t, c, tc.method, tc.path, "", "Host", "elsewhere.example", "X-Request-ID", "rt-1",
			"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		what := tc.method + " " + tc.path
		if r.code != tc.code || string(r.hdr.Peek("Allow")) != tc.allow || len(r.hdr.Peek("Location")) != 0 {
			t.Errorf("%s: %d, Allow %q, Location %q; want %d, Allow %q", what, r.code, r.hdr.Peek("Allow"), r.hdr.Peek("Location"), tc.code, tc.allow)
		}
		if tc.code >= 400 && !strings.Contains(r.body, `"error":"`) {
			t.Errorf("%s: body %q is not a JSON error", what, r.body)
		}
		if string(r.hdr.Peek("X-Request-Id")) != "rt-1" || !strings.HasPrefix(string(r.hdr.Peek("Traceparent")), "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
			t.Errorf("%s: X-Request-Id %q, traceparent %q", what, r.hdr.Peek("X-Request-Id"), r.hdr.Peek("Traceparent"))
		}
		for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"} {
			if len(r.hdr.Peek(h)) == 0 {
				t.Errorf("%s: no %s", what, h)
			}
		}
	}
}

// TestContentCoding: a body in gzip or deflate (zlib), as Triton's
// client sends it when asked to compress, is answered as the same body
// uncompressed, on every route that reads a body; one that inflates past
// the body limit is a 413, a corrupt one a 400, and any other coding a 415
// with Accept-Encoding naming the ones that would do (RFC 9110 §15.5.16).
func TestContentCoding(t *testing.T) {
	_, c := newTestServer(t, Config{MaxBodyBytes: 4 << 10})
	bodies := map[string]string{
		"/v1/predict":                            `{"text":"a fine film"}`,
		"/v1/predict/batch":                      `{"texts":["a fine film"]}`,
		"/v2/models/sentiment/infer":             `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a fine film"]}]}`,
		"/v2/models/sentiment/versions/v1/infer": `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a fine film"]}]}`,
	}
	compress := map[string]func(string) string{
		"gzip": func(b string) string {
			return zipped(t, b, func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) })
		},
		"deflate": func(b string) string {
			return zipped(t, b, func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) })
		},
	}
	compress["X-GZIP"], compress["identity"], compress["Identity"] = compress["gzip"], func(b string) string { return b }, func(b string) string { return b }
	for path, body := range bodies {
		plain := call(t, c, "POST", path, body, "X-Request-ID", "same")
		for enc, z := range compress {
			r := call(t, c, "POST", path, z(body), "Content-Encoding", enc, "X-Request-ID", "same")
			if r.code != 200 || r.body != plain.body {
				t.Errorf("%s in %s: %d %s, want %d %s", path, enc, r.code, r.body, plain.code, plain.body)
			}
		}
		for _, enc := range []string{"br", "compress", "gzip, identity", "gzip, gzip"} {
			r := call(t, c, "POST", path, body, "Content-Encoding", enc)
			if r.code != 415 || string(r.hdr.Peek("Accept-Encoding")) != "gzip, deflate" || !strings.Contains(r.body, "uncompressed") {
				t.Errorf("%s with Content-Encoding %q: %d, Accept-Encoding %q, %s", path, enc, r.code, r.hdr.Peek("Accept-Encoding"), r.body)
			}
		}
	}
	// A bomb: 1 MiB of spaces is a kilobyte in gzip.
	bomb := compress["gzip"](`{"text":"` + strings.Repeat(" ", 1<<20) + `"}`)
	if r := call(t, c, "POST", "/v1/predict", bomb, "Content-Encoding", "gzip"); r.code != 413 || !strings.Contains(r.body, "uncompressed") {
		t.Errorf("a gzip bomb of %d bytes: %d %s", len(bomb), r.code, r.body)
	}
	good := compress["gzip"](bodies["/v1/predict"])
	for what, b := range map[string]string{"not gzip": bodies["/v1/predict"], "truncated": good[:len(good)-6], "trailing junk": good + "junk!"} {
		if r := call(t, c, "POST", "/v1/predict", b, "Content-Encoding", "gzip"); r.code != 400 || !strings.Contains(r.body, "decompress") {
			t.Errorf("gzip %s: %d %s", what, r.code, r.body)
		}
	}
}

// zipped compresses body with the writer open makes.
func zipped(t *testing.T, body string, open func(io.Writer) io.WriteCloser) string {
	var b strings.Builder
	w := open(&b)
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestOpenInferenceProtocol(t *testing.T) {
	_, c := newTestServer(t, Config{})
	r := call(t, c, "GET", "/v2", "")
	if r.code != 200 || !strings.Contains(r.body, `"name":"sentiment-edge"`) {
		t.Fatalf("server metadata: %d %s", r.code, r.body)
	}
	for p, want := range map[string]string{"/v2/health/live": `"live":true`, "/v2/health/ready": `"ready":true`,
		"/v2/models/sentiment/ready": `{"name":"sentiment","ready":true}`, "/v2/models/sentiment/versions/v1/ready": `"ready":true`} {
		if r := call(t, c, "GET", p, ""); r.code != 200 || !strings.Contains(r.body, want) {
			t.Errorf("GET %s: %d %s, want %s", p, r.code, r.body, want)
		}
	}
	r = call(t, c, "GET", "/v2/models/sentiment", "")
	var meta struct {
		Name, Platform string
		Versions       []string
		Inputs         []struct{ Name, Datatype string }
		Outputs        []struct{ Name, Datatype string }
	}
	if json.Unmarshal([]byte(r.body), &meta) != nil || meta.Name != "sentiment" || meta.Inputs[0].Datatype != "BYTES" ||
		meta.Outputs[1].Name != "score" || meta.Outputs[1].Datatype != "FP32" || meta.Versions[0] != "v1" {
		t.Fatalf("model metadata %s", r.body)
	}
	// Nested data in a [2,2] shape, id echoed, only "score" asked for.
	body := `{"id":"req-9","parameters":{"binary_data_output":false},"inputs":[{"name":"text","shape":[2,2],"datatype":"BYTES","data":[["great","awful"],["fine fun","dull mess"]]}],"outputs":[{"name":"score"}]}`
	r = call(t, c, "POST", "/v2/models/sentiment/versions/v1/infer", body)
	var resp struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		ID           string
		Outputs      []struct {
			Name, Datatype string
			Shape          []int
			Data           []any
		}
	}
	if err := json.Unmarshal([]byte(r.body), &resp); err != nil || r.code != 200 {
		t.Fatalf("infer: %d %s %v", r.code, r.body, err)
	}
	if resp.ID != "req-9" || resp.ModelName != "sentiment" || resp.ModelVersion != "v1" || len(resp.Outputs) != 1 ||
		resp.Outputs[0].Name != "score" || fmt.Sprint(resp.Outputs[0].Shape) != "[2 2]" || len(resp.Outputs[0].Data) != 4 {
		t.Fatalf("infer response %s", r.body)
	}
	r = call(t, c, "POST", "/v2/models/sentiment/infer", `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["what a great film"]}]}`)
	if r.code != 200 || !strings.Contains(r.body, `"data":["positive"]`) || strings.Contains(r.body, `"id"`) {
		t.Fatalf("infer without id: %s", r.body)
	}
}

func TestNoModelYet(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Logger: quiet})
	c := startMem(t, srv)
	if r := call(t, c, "GET", "/health/ready", ""); r.code != 503 {
		t.Fatalf("ready without a model: %d", r.code)
	}
	if r := call(t, c, "GET", "/health/live", ""); r.code != 200 {
		t.Fatalf("live without a model: %d", r.code)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"hi"}`); r.code != 503 || !strings.Contains(r.body, "no model") {
		t.Fatalf("predict without a model: %d %s", r.code, r.body)
	}
	srv.Swap(defaultServing(t))
	srv.SetDraining(true)
	if r := call(t, c, "GET", "/health/ready", ""); r.code != 503 || !strings.Contains(r.body, "draining") {
		t.Fatalf("ready while draining: %d %s", r.code, r.body)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"hi"}`); r.code != 200 {
		t.Fatalf("predict while draining must still work: %d", r.code)
	}
}

func TestRateLimit(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} // the in-memory peer is 0.0.0.0
	_, c := newTestServer(t, Config{RatePerMinute: 60, RateBurst: 3, TrustedProxies: trusted})
	codes := func(xff string, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			r := call(t, c, "POST", "/v1/predict", `{"text":"hi"}`, "X-Forwarded-For", xff)
			out = append(out, r.code)
			if r.code == 429 && (string(r.hdr.Peek("Retry-After")) == "" || !strings.Contains(r.body, "rate limit")) {
				t.Fatalf("429 without Retry-After or JSON error: %s %s", r.hdr, r.body)
			}
		}
		return out
	}
	if got := fmt.Sprint(codes("203.0.113.7", 5)); got != "[200 200 200 429 429]" {
		t.Fatalf("client A: %s", got)
	}
	if got := fmt.Sprint(codes("198.51.100.1", 3)); got != "[200 200 200]" {
		t.Fatalf("client B has its own bucket: %s", got)
	}
	// Health checks are never rate limited.
	if r := call(t, c, "GET", "/health/ready", "", "X-Forwarded-For", "203.0.113.7"); r.code != 200 {
		t.Fatalf("health rate limited: %d", r.code)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f := func(peer, xff, want string) {
		t.Helper()
		got := clientip.Addr(net.ParseIP(peer), []byte(xff), trusted)
		if got.String() != want {
			t.Errorf("peer %s XFF %q: %s, want %s", peer, xff, got, want)
		}
	}
	f("203.0.113.5", "1.2.3.4", "203.0.113.5")             // untrusted peer: XFF ignored
	f("10.0.0.1", "1.2.3.4", "1.2.3.4")                    // trusted proxy
	f("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4") // spoofed left part ignored
	f("10.0.0.1", "10.0.0.3", "10.0.0.3")                  // only proxies: the last one
	f("10.0.0.1", "garbage", "10.0.0.1")
	f("10.0.0.1", "", "10.0.0.1")
	f("::ffff:10.0.0.1", "2001:db8::1", "2001:db8::1")
}

// TestSwapUnderLoad swaps models continuously while clients predict: no
// request fails, and every answer names a version that was being served
// while it was in flight: not older than the one served when it was sent,
// not newer than the last one swapped in by the time it came back.
func TestSwapUnderLoad(t *testing.T) {
	srv, c := newTestServer(t, Config{})
	base := defaultServing(t)
	// announced is raised before a swap and served after it, so a request
	// sent when served was lo and answered when announced was hi must be
	// answered by a version in [lo, hi].
	var stop atomic.Bool
	var announced, served atomic.Int64
	sv0 := *base
	sv0.Version = "v0"
	srv.Swap(&sv0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); !stop.Load(); i++ {
			sv := *base
			sv.Version = fmt.Sprintf("v%d", i)
			announced.Store(i)
			srv.Swap(&sv)
			served.Store(i)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	var mu sync.Mutex
	var failures []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				lo := served.Load()
				r := call(t, c, "POST", "/v1/predict", `{"text":"a charming and often affecting journey"}`)
				hi := announced.Load()
				var p struct{ Label, Version string }
				err := json.Unmarshal([]byte(r.body), &p)
				n, perr := strconv.ParseInt(strings.TrimPrefix(p.Version, "v"), 10, 64)
				if r.code == 200 && err == nil && perr == nil && p.Label == "positive" && n >= lo && n <= hi {
					ok.Add(1)
					continue
				}
				bad.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%d %s (sent at v%d, back by v%d)", r.code, r.body, lo, hi))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	<-done
	t.Logf("%d requests during %d swaps: %d failed", ok.Load()+bad.Load(), served.Load(), bad.Load())
	if bad.Load() != 0 || served.Load() < 10 {
		t.Fatalf("%d failed requests, %d swaps; first failures: %v", bad.Load(), served.Load(), failures[:min(len(failures), 5)])
	}
}

func TestMetricsEndpoint(t *testing.T) {
	_, c := newTestServer(t, Config{})
	call(t, c, "POST", "/v1/predict", `{"text":"great"}`)
	call(t, c, "POST", "/v1/predict", `{"text":""}`)
	r := call(t, c, "GET", "/metrics", "")
	sc := bufio.NewScanner(strings.NewReader(r.body))
	want := map[string]bool{
		`edge_requests_total{route="/v1/predict",code="200"}`:                     false,
		`edge_requests_total{route="/v1/predict",code="400"}`:                     false,
		`edge_predictions_total{label="positive",model="sentiment",version="v1"}`: false,
		`edge_request_duration_seconds_bucket{route="/v1/predict",le="0.005"}`:    false,
		`edge_model_loaded`: false,
	}
	for sc.Scan() {
		for k := range want {
			if strings.HasPrefix(sc.Text(), k+" ") {
				want[k] = true
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("metric %s missing", k)
		}
	}
}

// TestMetricsSeries checks the request and model-monitoring series: their
// values after known requests, and a text exposition Prometheus accepts:
// one TYPE line per family, each family's series together, no series twice.
func TestMetricsSeries(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	srv, c := newTestServer(t, Config{})
	sv := defaultServing(t)
	sv.Version = "series-test"
	srv.Swap(sv)
	call(t, c, "POST", "/v1/predict", `{"text":"a great and moving film"}`)     // 23 bytes
	call(t, c, "POST", "/v1/predict", `{"text":"dull, slow and far too long"}`) // 27 bytes
	call(t, c, "POST", "/v1/predict", `{"text":""}`)                            // 400: no model's answer, in no version's figures
	call(t, c, "POST", "/v1/predict/batch", `{"texts":["good","bad"]}`)
	body := call(t, c, "GET", "/metrics", "").body

	v := `model="sentiment",version="series-test"`
	want := map[string]string{
		`edge_version_requests_total{` + v + `}`:                              "3",
		`edge_version_errors_total{` + v + `}`:                                "0",
		`edge_version_request_duration_seconds_count{` + v + `}`:              "3",
		`edge_predictions_total{label="positive",` + v + `}`:                  "2",
		`edge_predictions_total{label="negative",` + v + `}`:                  "2",
		`edge_prediction_score_ratio_count{` + v + `}`:                        "4",
		`edge_prediction_text_bytes_bucket{` + v + `,le="16"}`:                "2",
		`edge_prediction_text_bytes_bucket{` + v + `,le="32"}`:                "4",
		`edge_prediction_text_bytes_sum{` + v + `}`:                           "57",
		`edge_requests_total{route="/v1/predict/batch",code="200"}`:           "",
		`edge_request_duration_seconds_bucket{route="/v1/predict",le="+Inf"}`: "",
	}
	types := map[string]bool{}
	seen := map[string]bool{}
	family := ""
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			family, _, _ = strings.Cut(name, " ")
			if types[family] {
				t.Errorf("a second TYPE line for %s", family)
			}
			types[family] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, _ := strings.Cut(line, " ")
		if seen[series] {
			t.Errorf("series %s written twice", series)
		}
		seen[series] = true
		name, _, _ := strings.Cut(series, "{")
		if name != family && !strings.HasPrefix(name, family+"_") {
			t.Errorf("series %s is not under its family's TYPE line (the last one was %s)", series, family)
		}
		if w, ok := want[series]; ok {
			if w != "" && value != w {
				t.Errorf("%s = %s, want %s", series, value, w)
			}
			delete(want, series)
		}
	}
	for series := range want {
		t.Errorf("no series %s", series)
	}
}

// TestHeaderNamesInAnyCase sends the request id and traceparent with
// lower-case names on the wire, as HTTP/2-minded proxies do: the edge
// reads them by their normalised names and must still continue both.
func TestHeaderNamesInAnyCase(t *testing.T) {
	_, c := newTestServer(t, Config{})
	conn, err := c.Dial("edge")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"text":"a fine film"}`
	fmt.Fprintf(conn, "POST /v1/predict HTTP/1.1\r\nhost: edge\r\nx-request-id: raw-1\r\ntraceparent: 00-%s-00f067aa0ba902b7-01\r\n"+
		"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s", trace, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "raw-1" {
		t.Errorf("X-Request-Id %q, want the request's raw-1", got)
	}
	if got := resp.Header.Get("Traceparent"); !strings.HasPrefix(got, "00-"+trace+"-") {
		t.Errorf("traceparent %q does not continue trace %s", got, trace)
	}
}

// TestPeerForwardCarriesTheProtocol: a request forwarded to a peer keeps
// what its body means (Content-Type, Inference-Header-Content-Length) and
// its trace (traceparent as a child span, tracestate while the trace is
// the client's); the peer's answer comes back with its own such headers.
func TestPeerForwardCarriesTheProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan map[string]string, 2)
	peer := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := map[string]string{}
		for k, v := range ctx.Request.Header.All() {
			h[strings.ToLower(string(k))] = string(v)
		}
		seen <- h
		ctx.SetStatusCode(fasthttp.StatusTooManyRequests)
		ctx.Response.Header.Set("Retry-After", "7")
		ctx.Response.Header.Set("Inference-Header-Content-Length", "2")
		ctx.SetContentType("application/octet-stream")
		ctx.SetBodyString("{}xy")
	}}
	go peer.Serve(ln)
	defer peer.Shutdown()
	p := NewPeers("eu-west", []string{"us-east"}, 2*time.Second, nil, slog.New(slog.DiscardHandler))
	p.Update("us-east", []string{ln.Addr().String()})
	const trace, state = "4bf92f3577b34da6a3ce929d0e0e4736", "congo=t61rcWkgMzE"
	for _, parent := range []string{"00-" + trace + "-00f067aa0ba902b7-01", "not-a-traceparent"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/sentiment/infer")
		ctx.Request.Header.SetContentType("application/octet-stream")
		ctx.Request.Header.Set("Inference-Header-Content-Length", "12")
		ctx.Request.Header.Set("traceparent", parent)
		ctx.Request.Header.Set("tracestate", state)
		ctx.Request.Header.Set("Via", "1.1 sentiment-geo")
		ctx.Request.Header.Set("X-Routing-Key", "chosen-by-the-client")
		ctx.Request.Header.Set("Connection", "keep-alive, X-Secret")
		ctx.Request.Header.Set("X-Secret", "for this hop")
		ctx.Request.SetBodyString(`{"inputs":[]}` + "tensor")
		tc := frontdoor.TraceFrom(&ctx.Request.Header, false)
		if err := p.forward(&ctx, "req-1", false, tc); err != nil {
			t.Fatal(err)
		}
		h := <-seen
		if h["content-type"] != "application/octet-stream" || h["inference-header-content-length"] != "12" || h["x-request-id"] != "req-1" ||
			h["via"] != "1.1 sentiment-geo, 1.1 sentiment-edge-eu-west" || h["x-routing-key"] != "" || h["x-secret"] != "" {
			t.Errorf("the peer got %v", h)
		}
		continued := parent != "not-a-traceparent"
		if got := strings.Contains(h["traceparent"], trace); got != continued {
			t.Errorf("traceparent %q at the peer for the client's %q", h["traceparent"], parent)
		}
		if got := h["tracestate"] == state; got != continued {
			t.Errorf("tracestate %q at the peer beside the client's traceparent %q", h["tracestate"], parent)
		}
		r := &ctx.Response
		if r.StatusCode() != 429 || string(r.Header.Peek("Retry-After")) != "7" || string(r.Header.Peek("Inference-Header-Content-Length")) != "2" ||
			string(r.Header.ContentType()) != "application/octet-stream" || string(r.Body()) != "{}xy" ||
			string(r.Header.Peek("X-Served-Region")) != "us-east" {
			t.Errorf("the peer's answer came back as %d %q: %s", r.StatusCode(), r.Body(), r.Header.String())
		}
	}
}
