package forward

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// prepared parses raw as a server would, runs Prepare on it and returns
// the request as it goes on.
func prepared(t *testing.T, raw string, trusted bool) string {
	t.Helper()
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("cannot parse %q: %v", raw, err)
	}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000}, nil)
	Prepare(&ctx, "req-1", trusted, "sentiment-geo")
	return ctx.Request.String()
}

// TestPrepareRemovesEveryHopByHopHeader: whatever its case and even empty,
// no hop-by-hop header goes on, nor one the Connection header names, nor
// an untrusted client's routing key; the pre-check that lets the common
// request skip the removals must see them all.
func TestPrepareRemovesEveryHopByHopHeader(t *testing.T) {
	names := append([]string{RoutingKey, "x-secret-hop"}, hopByHop...)
	for _, name := range names {
		for _, spelling := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			for _, value := range []string{"v", ""} {
				raw := "POST /v1/predict HTTP/1.1\r\nHost: geo\r\nContent-Length: 2\r\n"
				if name == "x-secret-hop" {
					raw += "Connection: X-Secret-Hop\r\n"
				}
				if name == "Transfer-Encoding" {
					value = "identity" // the only other value fasthttp parses
				}
				raw += spelling + ": " + value + "\r\nX-Kept: yes\r\n\r\n{}"
				out := prepared(t, raw, false)
				head, _, _ := strings.Cut(out, "\r\n\r\n")
				if strings.Contains(strings.ToLower(head), "\n"+strings.ToLower(name)+":") {
					t.Errorf("%q with value %q went on:\n%s", spelling, value, out)
				}
				if !strings.Contains(head, "\r\nX-Kept: yes") || !strings.Contains(head, "\r\nVia: 1.1 sentiment-geo") ||
					!strings.Contains(head, "\r\nX-Forwarded-For: 192.0.2.7") || !strings.Contains(head, "\r\nX-Request-Id: req-1") {
					t.Errorf("%q: the end-to-end headers or this hop's are missing:\n%s", spelling, out)
				}
			}
		}
	}
}

// TestPrepareKeepsATrustedRoutingKey: a trusted proxy's routing key goes
// on, and the hop appends itself to Via and X-Forwarded-For.
func TestPrepareKeepsATrustedRoutingKey(t *testing.T) {
	raw := "POST /v1/predict HTTP/1.0\r\nHost: geo\r\nContent-Length: 2\r\nx-routing-key: k1\r\n" +
		"via: 1.1 lb\r\nx-forwarded-for: 203.0.113.9\r\nx-request-id: theirs\r\n\r\n{}"
	out := prepared(t, raw, true)
	for _, want := range []string{"HTTP/1.1\r\n", "\r\nX-Routing-Key: k1\r\n", "\r\nVia: 1.1 lb, 1.0 sentiment-geo\r\n",
		"\r\nX-Forwarded-For: 203.0.113.9, 192.0.2.7\r\n", "\r\nX-Request-Id: req-1\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	if strings.Count(strings.ToLower(out), "x-request-id") != 1 || strings.Contains(strings.ToLower(out), "connection: close") {
		t.Errorf("one X-Request-Id, no Connection: close, in:\n%s", out)
	}
}
