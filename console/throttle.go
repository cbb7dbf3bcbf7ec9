package console

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Login throttling: the login form checks a registry token, so without a
// limit it is an oracle for guessing tokens as fast as the network
// allows.
const (
	freeFailures  = 5                // failed logins an address may make before it waits
	firstWait     = time.Second      // the wait after them, doubling with each further failure
	maxWait       = 15 * time.Minute // the longest wait
	forgetAfter   = time.Hour        // an address this long without a failure starts afresh
	maxTracked    = 10_000           // addresses remembered; past it only the overall limit applies
	overallPerSec = 10.0             // failed logins a second from everyone, in bursts of
	overallBurst  = 50.0
)

var loginsThrottled = metrics.NewCounter(`registry_console_logins_throttled_total`)

// loginThrottle holds back logins after failures: per client address
// (IPv6 by /64), after freeFailures each further attempt waits twice as
// long as the one before, up to maxWait, until a success or forgetAfter
// without a failure; overall, failures past overallPerSec hold every
// address back until the budget refills.
type loginThrottle struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]*failures
	tokens float64 // the overall budget
	last   time.Time
}

type failures struct {
	n     int
	until time.Time // no attempt before this
	last  time.Time
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{byAddr: map[netip.Addr]*failures{}, tokens: overallBurst}
}

// wait is how long the client at addr must wait before its next attempt;
// zero when it may try now.
func (lt *loginThrottle) wait(addr netip.Addr, now time.Time) time.Duration {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.refill(now)
	var w time.Duration
	if f := lt.byAddr[addr]; f != nil && now.Before(f.until) {
		w = f.until.Sub(now)
	}
	if lt.tokens < 1 {
		w = max(w, time.Duration((1-lt.tokens)/overallPerSec*float64(time.Second)))
	}
	if w > 0 {
		loginsThrottled.Inc()
	}
	return w
}

// failed records a failed login from addr.
func (lt *loginThrottle) failed(addr netip.Addr, now time.Time) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.refill(now)
	lt.tokens = max(lt.tokens-1, -overallBurst) // a flood keeps the budget empty, not deeply owed
	f := lt.byAddr[addr]
	if f != nil && now.Sub(f.last) > forgetAfter {
		f.n = 0
	}
	if f == nil {
		if len(lt.byAddr) >= maxTracked {
			lt.forget(now)
		}
		if len(lt.byAddr) >= maxTracked {
			return
		}
		f = &failures{}
		lt.byAddr[addr] = f
	}
	f.n++
	f.last = now
	if f.n >= freeFailures {
		f.until = now.Add(min(maxWait, firstWait<<min(f.n-freeFailures, 20)))
	}
}

// succeeded forgets addr's failures.
func (lt *loginThrottle) succeeded(addr netip.Addr) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	delete(lt.byAddr, addr)
}

func (lt *loginThrottle) refill(now time.Time) {
	if !lt.last.IsZero() {
		lt.tokens = min(overallBurst, lt.tokens+now.Sub(lt.last).Seconds()*overallPerSec)
	}
	lt.last = now
}

// forget drops the addresses whose failures are old enough to forget.
func (lt *loginThrottle) forget(now time.Time) {
	for a, f := range lt.byAddr {
		if now.Sub(f.last) > forgetAfter {
			delete(lt.byAddr, a)
		}
	}
}

// remoteAddr is the request's client address, IPv6 by /64 (which one
// host usually holds).
func remoteAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}
