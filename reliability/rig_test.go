package reliability

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

var (
	full       = flag.Bool("full", false, "run the full-length scenarios (make reliability) instead of the CI ones")
	reportFile = flag.String("report", "", "also write the report table to this file")
)

// pick returns the full or the CI value.
func pick[T any](ci, long T) T {
	if *full {
		return long
	}
	return ci
}

// row is one line of the report.
type row struct {
	scenario  string
	offered   string
	requests  int64
	failed    int64
	p99       time.Duration
	recovery  string
	memGrowth string
	note      string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func report(r row) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, r)
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if len(rows) > 0 {
		var out strings.Builder
		writeReport(&out)
		fmt.Print(out.String())
		if *reportFile != "" {
			if err := os.WriteFile(*reportFile, []byte(out.String()), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "cannot write the report:", err)
			}
		}
	}
	os.Exit(code)
}

// writeReport renders the rows as one table.
func writeReport(out io.Writer) {
	mode := "CI (short)"
	if *full {
		mode = "full"
	}
	fmt.Fprintf(out, "\nreliability report (%s mode)\n\n", mode)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\toffered\trequests\tfailed\tp99\trecovery\tmemory growth\tnote")
	for _, r := range rows {
		p99 := "-"
		if r.p99 > 0 {
			p99 = r.p99.Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.scenario, r.offered, r.requests, r.failed, p99, or(r.recovery), or(r.memGrowth), r.note)
	}
	w.Flush()
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// marker is in every text the load sends, so the log check can prove no
// raw text reached a log line.
const marker = "zq-private-text-7f3a"

// startLoad starts an open-loop load (testenv.Load) of marked texts, the
// log check's proof that no text reached a log, whose client opens
// connections as it needs them, up to 256 (as a client's pool would).
func startLoad(url, hint string, rate float64, maxInFlight int) *testenv.Load {
	return testenv.StartLoad(loadConfig(url, hint, rate, maxInFlight))
}

// startPooledLoad starts a load whose client opens all of its conns
// connections first and never more: its requests beyond them wait in the
// client (and count in latency).
func startPooledLoad(url, hint string, rate float64, maxInFlight, conns int) *testenv.Load {
	c := loadConfig(url, hint, rate, maxInFlight)
	c.Conns, c.Warm = conns, true
	return testenv.StartLoad(c)
}

func loadConfig(url, hint string, rate float64, maxInFlight int) testenv.LoadConfig {
	return testenv.LoadConfig{URL: url, Rate: rate, MaxInFlight: maxInFlight, Prepare: func(req *fasthttp.Request, n int64) {
		req.SetBodyString(fmt.Sprintf(`{"text":"%s a fine and moving film, take %d"}`, marker, n))
		if hint != "" {
			req.Header.Set("X-Region", hint)
		}
	}}
}

// predictRequest returns a pooled POST of body to url and its response;
// call release when done with both.
func predictRequest(url, body string) (req *fasthttp.Request, resp *fasthttp.Response, release func()) {
	req, resp = fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod("POST")
	req.SetRequestURI(url)
	req.Header.SetContentType("application/json")
	req.SetBodyString(body)
	return req, resp, func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) }
}

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	ports, err := testenv.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i, p := range ports {
		out[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return out
}

// services remembers every process a scenario starts, for the log check.
type services struct {
	procs []*testenv.Process
}

// add remembers a started service.
func (s *services) add(svc *testenv.Service) *testenv.Service {
	s.procs = append(s.procs, svc.Process)
	return svc
}

// startEdge starts an edge as e says.
func (s *services) startEdge(t *testing.T, e testenv.Edge) *testenv.Service {
	t.Helper()
	return s.add(testenv.StartEdge(t, e))
}

// edge starts an edge serving the embedded default model (no registry).
func (s *services) edge(t *testing.T, region, addr string, extra ...string) *testenv.Process {
	t.Helper()
	return s.startEdge(t, testenv.Edge{Addr: addr, Region: region, Args: extra}).Process
}

// startGeo starts a geo router as g says.
func (s *services) startGeo(t *testing.T, g testenv.Geo) *testenv.Service {
	t.Helper()
	return s.add(testenv.StartGeo(t, g))
}

// geo starts a geo router over static edges: region=addr|addr,..., and
// waits until it is ready. Its per-client limit is off: the load comes
// from one address.
func (s *services) geo(t *testing.T, addr, static string, perTry time.Duration, extra ...string) *testenv.Process {
	t.Helper()
	return s.startGeo(t, testenv.Geo{Addr: addr, Static: static, PerTry: perTry.String(), WaitReady: true, Args: extra}).Process
}

// checkLogs fails if any log line holds a secret or a raw request text.
func (s *services) checkLogs(t *testing.T, secrets ...string) {
	t.Helper()
	for _, p := range s.procs {
		data, err := os.ReadFile(p.LogPath)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, secret := range append([]string{marker}, secrets...) {
				if secret != "" && strings.Contains(line, secret) {
					t.Errorf("%s log line %d holds %q: %s", p.Name, i+1, secret, line)
				}
			}
		}
	}
}

// routeState reads a region's breaker and edge count from /v1/route.
func routeState(geoAddr, region string) (breaker string, edges int) {
	code, body, err := fasthttp.GetTimeout(nil, "http://"+geoAddr+"/v1/route", time.Second)
	if err != nil || code != 200 {
		return "", -1
	}
	s := string(body)
	i := strings.Index(s, `"region":"`+region+`"`)
	if i < 0 {
		return "", -1
	}
	s = s[i:]
	if j := strings.Index(s, `"breaker":"`); j >= 0 {
		rest := s[j+len(`"breaker":"`):]
		breaker = rest[:strings.IndexByte(rest, '"')]
	}
	if j := strings.Index(s, `"edges":[`); j >= 0 {
		list := s[j+len(`"edges":[`):]
		list = list[:strings.IndexByte(list, ']')]
		if list != "" {
			edges = strings.Count(list, ",") + 1
		}
	}
	return breaker, edges
}
