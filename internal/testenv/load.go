package testenv

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// LoadConfig says what a Load sends and how.
type LoadConfig struct {
	// URL is where every request goes (a POST).
	URL string
	// Rate > 0 starts that many requests per second whatever the latency
	// (open loop), at most MaxInFlight at once (default 256): a request it
	// cannot start counts as dropped by the client, not as sent. Rate 0 is
	// a closed loop: Workers goroutines (default 8) send one request after
	// another, Pause apart.
	Rate        float64
	MaxInFlight int
	Workers     int
	Pause       time.Duration
	// Conns caps the client's connections (default: one per request that
	// may be in flight, up to 256). Warm opens them all before the load
	// starts, so the servers hold the same connections from start to end,
	// as they do for a client with a fixed pool.
	Conns int
	Warm  bool
	// Timeout bounds one request (default 5 s).
	Timeout time.Duration
	// TLS, when set, is the client's TLS configuration for an https URL.
	TLS *tls.Config
	// Prepare sets request n's headers and body beyond the URL and the
	// method; by default the body is {"text":"a wonderful film"}.
	Prepare func(req *fasthttp.Request, n int64)
	// Observe, when set, sees every request's outcome, one at a time.
	Observe func(n int64, resp *fasthttp.Response, err error)
}

// Load is traffic to one URL, counted by outcome: the one load generator
// of the tests.
type Load struct {
	cfg                                 LoadConfig
	Sent, OK, Rejected, Failed, Dropped atomic.Int64

	mu          sync.Mutex
	lat         []time.Duration
	lastServed  map[string]time.Time
	servedCount map[string]int64
	codes       map[int]int64
	errs        []string
	stop        chan struct{}
	done        sync.WaitGroup
	client      *fasthttp.HostClient
}

// StartLoad starts the load; Stop ends it.
func StartLoad(cfg LoadConfig) *Load {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Conns <= 0 {
		cfg.Conns = min(cfg.MaxInFlight, 256)
		if cfg.Rate == 0 {
			cfg.Conns = cfg.Workers
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		panic(fmt.Sprintf("load URL %q: %v", cfg.URL, err))
	}
	l := &Load{cfg: cfg, lastServed: map[string]time.Time{}, servedCount: map[string]int64{}, codes: map[int]int64{},
		stop: make(chan struct{}),
		// Requests beyond the pool wait for a free connection (and count
		// in latency).
		client: &fasthttp.HostClient{Addr: u.Host, MaxConns: cfg.Conns, MaxConnWaitTimeout: cfg.Timeout,
			ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, Dial: (&fasthttp.TCPDialer{Concurrency: 1000}).Dial,
			IsTLS: u.Scheme == "https", TLSConfig: cfg.TLS}}
	l.done.Add(1)
	if cfg.Rate > 0 {
		go l.openLoop()
	} else {
		go l.closedLoop()
	}
	return l
}

// Stop ends the load and waits for the requests in flight.
func (l *Load) Stop() {
	close(l.stop)
	l.done.Wait()
}

func (l *Load) closedLoop() {
	defer l.done.Done()
	var n atomic.Int64
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(n.Add(1) - 1)
				if l.cfg.Pause > 0 {
					time.Sleep(l.cfg.Pause)
				}
			}
		}()
	}
	wg.Wait()
}

func (l *Load) openLoop() {
	defer l.done.Done()
	var started int64 // requests numbered so far
	if l.cfg.Warm {
		started = l.openPool()
	}
	sem := make(chan struct{}, l.cfg.MaxInFlight)
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
		due := int64(time.Since(start).Seconds() * l.cfg.Rate)
		for ; started < due; started++ {
			select {
			case sem <- struct{}{}:
			default:
				l.Dropped.Add(1)
				continue
			}
			wg.Add(1)
			go func(n int64) {
				defer wg.Done()
				defer func() { <-sem }()
				l.one(n)
			}(started)
		}
	}
}

// openPool sends bursts of Conns requests at once until the client holds
// Conns connections (a burst can reuse a connection a fast answer freed).
func (l *Load) openPool() (sent int64) {
	for burst := 0; burst < 20 && l.client.ConnsCount() < l.cfg.Conns; burst++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range l.cfg.Conns {
			n := sent
			sent++
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l.one(n)
			}()
		}
		close(start)
		wg.Wait()
	}
	return sent
}

func (l *Load) one(n int64) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI(l.cfg.URL)
	req.Header.SetContentType("application/json")
	if l.cfg.Prepare != nil {
		l.cfg.Prepare(req, n)
	} else {
		req.SetBodyString(`{"text":"a wonderful film"}`)
	}
	l.Sent.Add(1)
	t0 := time.Now()
	err := l.client.DoTimeout(req, resp, l.cfg.Timeout)
	d := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Observe != nil {
		l.cfg.Observe(n, resp, err)
	}
	switch code := resp.StatusCode(); {
	case err != nil:
		l.Failed.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
	case code == 200:
		l.OK.Add(1)
		l.lat = append(l.lat, d)
		region := string(resp.Header.Peek("X-Served-Region"))
		l.lastServed[region] = time.Now()
		l.servedCount[region]++
	case code == 429 || code == 503:
		l.Rejected.Add(1)
		l.codes[code]++
	default:
		l.Failed.Add(1)
		l.codes[code]++
		if len(l.errs) < 5 {
			l.errs = append(l.errs, fmt.Sprintf("status %d: %s", code, resp.Body()))
		}
	}
}

// Quantile is the q quantile of the answered requests' latencies.
func (l *Load) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Quantile(l.lat, q)
}

// Quantile is the q quantile of lat (0 when empty).
func Quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// ServedBy is when a region (X-Served-Region) last answered and how often.
func (l *Load) ServedBy(region string) (last time.Time, count int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastServed[region], l.servedCount[region]
}

// Summary is the load's counts, status codes, regions and first errors.
func (l *Load) Summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("sent %d ok %d rejected %d failed %d dropped-by-client %d codes %v served %v errors %q",
		l.Sent.Load(), l.OK.Load(), l.Rejected.Load(), l.Failed.Load(), l.Dropped.Load(), l.codes, l.servedCount, l.errs)
}

// Latencies are the answered requests' latencies, a copy.
func (l *Load) Latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lat)
}
