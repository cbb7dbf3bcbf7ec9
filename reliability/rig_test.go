package reliability

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// load is an open-loop load generator: it starts rate requests per second
// whatever the latency, with at most maxInFlight in flight; a request it
// cannot start counts as dropped by the client, not as sent.
type load struct {
	url, hint   string
	rate        float64
	maxInFlight int
	conns       int  // the client's connection pool
	warm        bool // open the whole pool before the open loop starts
	timeout     time.Duration

	sent, ok, rejected, failed, dropped atomic.Int64
	mu                                  sync.Mutex
	lat                                 []time.Duration
	lastServed                          map[string]time.Time
	servedCount                         map[string]int64
	codes                               map[int]int64
	errs                                []string
	stop                                chan struct{}
	done                                sync.WaitGroup
}

// startLoad starts a load whose client opens connections as it needs
// them, up to 256 (as a client's connection pool would).
func startLoad(url, hint string, rate float64, maxInFlight int) *load {
	return newLoad(url, hint, rate, maxInFlight, min(maxInFlight, 256), false)
}

// startPooledLoad starts a load whose client opens all of its conns
// connections first and never more: its requests beyond them wait in the
// client (and count in latency). The servers then hold the same
// connections from start to end, as they do for a client with a fixed pool.
func startPooledLoad(url, hint string, rate float64, maxInFlight, conns int) *load {
	return newLoad(url, hint, rate, maxInFlight, conns, true)
}

func newLoad(url, hint string, rate float64, maxInFlight, conns int, warm bool) *load {
	l := &load{url: url, hint: hint, rate: rate, maxInFlight: maxInFlight, conns: conns, warm: warm, timeout: 5 * time.Second,
		lastServed: map[string]time.Time{}, servedCount: map[string]int64{}, codes: map[int]int64{}, stop: make(chan struct{})}
	l.done.Add(1)
	go l.run()
	return l
}

// openPool sends bursts of conns requests at once until the client holds
// conns connections (a burst can reuse a connection a fast answer freed).
func (l *load) openPool(client *fasthttp.HostClient) (sent int64) {
	for burst := 0; burst < 20 && client.ConnsCount() < l.conns; burst++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range l.conns {
			n := sent
			sent++
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l.one(client, n)
			}()
		}
		close(start)
		wg.Wait()
	}
	return sent
}

func (l *load) run() {
	defer l.done.Done()
	// Requests beyond the pool wait for a free connection (and count in
	// latency).
	u, err := url.Parse(l.url)
	if err != nil {
		panic(err)
	}
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: l.conns, MaxConnWaitTimeout: l.timeout,
		ReadTimeout: l.timeout, WriteTimeout: l.timeout, Dial: (&fasthttp.TCPDialer{Concurrency: 1000}).Dial}
	var started int64 // requests numbered so far
	if l.warm {
		started = l.openPool(client)
	}
	sem := make(chan struct{}, l.maxInFlight)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds() * l.rate)
		for ; started < due; started++ {
			select {
			case sem <- struct{}{}:
			default:
				l.dropped.Add(1)
				continue
			}
			wg.Add(1)
			go func(n int64) {
				defer wg.Done()
				defer func() { <-sem }()
				l.one(client, n)
			}(started)
		}
	}
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

func (l *load) one(client *fasthttp.HostClient, n int64) {
	req, resp, release := predictRequest(l.url, fmt.Sprintf(`{"text":"%s a fine and moving film, take %d"}`, marker, n))
	defer release()
	if l.hint != "" {
		req.Header.Set("X-Region", l.hint)
	}
	l.sent.Add(1)
	t0 := time.Now()
	err := client.DoTimeout(req, resp, l.timeout)
	d := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch code := resp.StatusCode(); {
	case err != nil:
		l.failed.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
	case code == 200:
		l.ok.Add(1)
		l.lat = append(l.lat, d)
		region := string(resp.Header.Peek("X-Served-Region"))
		l.lastServed[region] = time.Now()
		l.servedCount[region]++
	case code == 429 || code == 503:
		l.rejected.Add(1)
		l.codes[code]++
	default:
		l.failed.Add(1)
		l.codes[code]++
		if len(l.errs) < 5 {
			l.errs = append(l.errs, fmt.Sprintf("status %d: %s", code, resp.Body()))
		}
	}
}

// Stop ends the load and waits for requests in flight.
func (l *load) Stop() {
	close(l.stop)
	l.done.Wait()
}

func (l *load) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return quantile(l.lat, 0.99)
}

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (l *load) servedBy(region string) (last time.Time, count int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastServed[region], l.servedCount[region]
}

func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("sent %d ok %d rejected %d failed %d dropped-by-client %d codes %v served %v errors %q",
		l.sent.Load(), l.ok.Load(), l.rejected.Load(), l.failed.Load(), l.dropped.Load(), l.codes, l.servedCount, l.errs)
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
