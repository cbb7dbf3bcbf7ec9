package reliability

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// errorCase is one bad request and the statuses it may get.
type errorCase struct {
	what, method, path, token, body string
	header                          map[string]string
	raw                             string // sent as is on a fresh connection instead
	codes                           []int
	// byNetHTTP: Go's net/http answers this itself, in plain text, before
	// any handler runs (a request line it cannot parse, headers over
	// MaxHeaderBytes); only the status and the absence of leaks are
	// checked.
	byNetHTTP bool
}

// TestErrorBodies sends bad input to the edge, the geo router and the
// registry binaries, then takes their dependencies away (the edge behind
// the router, the registry's S3 server). Every error answer is JSON with
// "error" and "request_id", and none names a loopback address, the bucket
// or an upstream error.
func TestErrorBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "secret-bucket")
	var s services
	addrs := freeAddrs(t, 3)
	edgeAddr, geoAddr, regAddr := addrs[0], addrs[1], addrs[2]
	edge := s.edge(t, "us-east", edgeAddr, "-max-body-bytes", "4096")
	s.geo(t, geoAddr, "us-east="+edgeAddr, 300*time.Millisecond)
	s.registry(t, "registry", regAddr, s3srv, bucket, "")
	leaks := []string{"127.0.0.1", "localhost", "[::1]", bucket, "secret-bucket", "dial tcp", "connection refused", s3srv.Endpoint()}

	// A body over the limit is refused from its Content-Length: only the
	// headers are sent, so the answer does not race the rest of the body
	// (the server closes the connection after answering).
	bodyOver := func(size int) string {
		return "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(size) + "\r\n\r\n"
	}
	// Headers over the limit (8 KiB on the fasthttp services, 64 KiB on
	// the registry), sent whole before the answer is read.
	bigHeaders := func(size int) string {
		return "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("h", size) + "\r\n\r\n"
	}
	common := func(netHTTP bool) []errorCase {
		size := 16 << 10
		if netHTTP {
			size = 80 << 10
		}
		return []errorCase{
			{what: "unknown route", method: "GET", path: "/nope", codes: []int{404}},
			{what: "garbage request line", raw: "HELLO\r\n\r\n", codes: []int{400}, byNetHTTP: netHTTP},
			{what: "headers too large", raw: bigHeaders(size), codes: []int{431}, byNetHTTP: netHTTP},
		}
	}
	check := func(service, base string, cases []errorCase) {
		t.Helper()
		for _, c := range cases {
			code, body := send(t, base, c)
			what := service + " " + c.what
			if !containsInt(c.codes, code) {
				t.Errorf("%s: status %d, want one of %v: %s", what, code, c.codes, body)
			}
			if c.byNetHTTP {
				checkNoLeak(t, what, body, leaks)
				continue
			}
			checkErrorBody(t, what, body, leaks)
		}
	}
	predict := func(what, body string, codes ...int) errorCase {
		return errorCase{what: what, method: "POST", path: "/v1/predict", body: body, codes: codes}
	}
	edgeCases := append(common(false),
		predict("invalid JSON", "{not json", 400),
		predict("unknown field", `{"text":"a","color":1}`, 400),
		predict("empty text", `{"text":"  "}`, 400),
		predict("text not UTF-8", "{\"text\":\"\xff\xfe\"}", 400),
		errorCase{what: "body over the limit", raw: bodyOver(8192), codes: []int{413}},
		errorCase{what: "wrong method", method: "DELETE", path: "/v1/predict", codes: []int{405}},
		errorCase{what: "OIP wrong datatype", method: "POST", path: "/v2/models/sentiment/infer",
			body: `{"inputs":[{"name":"text","shape":[1],"datatype":"FP32","data":[1]}]}`, codes: []int{400}},
		errorCase{what: "OIP unknown model", method: "POST", path: "/v2/models/nope/infer", body: `{}`, codes: []int{404}},
	)
	check("edge", "http://"+edgeAddr, edgeCases)
	check("geo", "http://"+geoAddr, append(common(false),
		errorCase{what: "body over the 64 KiB limit", raw: bodyOver(2 << 20), codes: []int{413}},
		predict("invalid JSON, answered by the edge", "{not json", 400),
	))
	reg := "http://" + regAddr
	check("registry", reg, append(common(true),
		errorCase{what: "no token", method: "GET", path: "/v1/models", codes: []int{401}},
		errorCase{what: "wrong method", method: "PATCH", path: "/v1/models", codes: []int{405}},
		errorCase{what: "invalid JSON", method: "PUT", path: "/v1/models/m/versions/v1", token: registrytest.AdminToken,
			body: "{not json", codes: []int{400}},
		errorCase{what: "not JSON", method: "PUT", path: "/v1/models/m/versions/v1", token: registrytest.AdminToken,
			header: map[string]string{"Content-Type": "text/plain"}, body: "{}", codes: []int{415}},
		errorCase{what: "unknown version", method: "GET", path: "/v1/models/m/versions/v9", token: registrytest.ReaderToken, codes: []int{404}},
	))

	// Dependencies gone: the router's only edge, the registry's S3.
	edge.Stop(5 * time.Second)
	s3srv.Stop()
	check("geo", "http://"+geoAddr, []errorCase{predict("with its only edge gone", `{"text":"fine"}`, 503)})
	check("registry", reg, []errorCase{
		{what: "with S3 gone", method: "GET", path: "/v1/models", token: registrytest.ReaderToken, codes: []int{503}},
		{what: "publish with S3 gone", method: "PUT", path: "/v1/blobs/sha256:" + strings.Repeat("0", 64),
			token: registrytest.AdminToken, body: "data", codes: []int{503}},
	})
	// Readiness says it is not ready, not why (that is in the log).
	code, body := send(t, reg, errorCase{method: "GET", path: "/health/ready"})
	if code != 503 {
		t.Errorf("registry readiness with S3 gone: %d %s", code, body)
	}
	checkNoLeak(t, "registry readiness", body, leaks)
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// send makes one request on a fresh connection and returns the status and
// body.
func send(t *testing.T, base string, c errorCase) (int, string) {
	t.Helper()
	if c.raw != "" {
		// A server that answers before reading everything sent closes with
		// unread data, which resets the connection and may discard the
		// answer before it is read: a TCP race, not the behaviour under
		// test, so it is tried again.
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			var code int
			var body string
			if code, body, err = sendRaw(base, c.raw); err == nil {
				return code, body
			}
		}
		t.Fatalf("%s: %v", c.what, err)
	}
	req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
	req.Close = true
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.what, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sendRaw(base, raw string) (int, string, error) {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// checkErrorBody fails unless body is a JSON error with a message and a
// request ID, naming none of leaks.
func checkErrorBody(t *testing.T, what, body string, leaks []string) {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Errorf("%s: body is not JSON (%v): %q", what, err, body)
		return
	}
	msg, _ := e["error"].(string)
	id, _ := e["request_id"].(string)
	if msg == "" || id == "" {
		t.Errorf("%s: want non-empty error and request_id: %s", what, body)
	}
	checkNoLeak(t, what, body, leaks)
}

func checkNoLeak(t *testing.T, what, body string, leaks []string) {
	t.Helper()
	for _, leak := range leaks {
		if strings.Contains(body, leak) {
			t.Errorf("%s: the body names %q: %s", what, leak, body)
		}
	}
}
