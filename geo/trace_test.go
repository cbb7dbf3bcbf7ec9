package geo_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

// TestOneTraceAcrossFailover: a request the router starts a trace for
// fails over from a frozen region to the next. The answer carries the
// trace and the request id; the router's log line, and the lines of both
// edges (the frozen one logs the request when it thaws), carry the same
// trace id and request id, with a span of their own each.
func TestOneTraceAcrossFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge and geo binaries")
	}
	ports, err := testenv.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	slow, next, geo := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	startEdge := func(region, addr string) *testenv.Service {
		return testenv.StartEdge(t, testenv.Edge{Addr: addr, Region: region, TrustedProxies: "127.0.0.1/32", Args: []string{"-access-log-sample", "1"}})
	}
	frozen, served := startEdge("us-east", slow), startEdge("eu-west", next)
	router := testenv.StartGeo(t, testenv.Geo{Addr: geo, Static: "us-east=" + slow + ",eu-west=" + next, Default: "us-east", PerTry: "300ms",
		WaitReady: true, Args: []string{"-access-log-sample", "1"}})

	// Freeze us-east and predict at once, before the router's health probe
	// drops it: the attempt times out and eu-west answers. If the probe
	// won the race, thaw and try again.
	var resp *http.Response
	for try := 0; ; try++ {
		waitServedBy(t, geo, "us-east")
		if err := syscall.Kill(frozen.PID(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resp, err = http.Post("http://"+geo+"/v1/predict", "application/json", strings.NewReader(`{"text":"a wonderful film"}`))
		syscall.Kill(frozen.PID(), syscall.SIGCONT)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Failovers") == "1" || try == 4 {
			break
		}
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Served-Region") != "eu-west" || resp.Header.Get("X-Failovers") != "1" {
		t.Fatalf("no failover: %d from %q, %q failovers", resp.StatusCode, resp.Header.Get("X-Served-Region"), resp.Header.Get("X-Failovers"))
	}
	traceparent, id := resp.Header.Get("traceparent"), resp.Header.Get("X-Request-Id")
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || id == "" {
		t.Fatalf("answer without a trace or an id: traceparent %q, X-Request-Id %q", traceparent, id)
	}
	trace := parts[1]
	spans := map[string]string{}
	for name, p := range map[string]*testenv.Process{"geo": router.Process, "us-east": frozen.Process, "eu-west": served.Process} {
		line := waitLogLine(t, p, `"trace_id":"`+trace+`"`)
		if !strings.Contains(line, `"request_id":"`+id+`"`) {
			t.Errorf("%s logged the trace with another request id: %s", name, line)
		}
		_, span, _ := strings.Cut(line, `"span_id":"`)
		span, _, _ = strings.Cut(span, `"`)
		if other, dup := spans[span]; dup || span == "" {
			t.Errorf("%s's span %q is not its own (also %s)", name, span, other)
		}
		spans[span] = name
	}
}

func waitServedBy(t *testing.T, geo, region string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("POST", "http://"+geo+"/v1/predict", strings.NewReader(`{"text":"fine"}`))
		req.Header.Set("X-Region", region)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Served-Region") == region && resp.Header.Get("X-Failovers") == "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not served within 10s", region)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogLine returns the first line of p's log holding s, waiting up to
// 10 s for it.
func waitLogLine(t *testing.T, p *testenv.Process, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(p.LogPath)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %s", p.Name, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
