package geo

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/valyala/fasthttp"
)

// A region's last hour, a minute at a time: the attempts sent to it, how
// many failed, their latency (in the buckets of the router's histograms)
// and its breaker's worst state. The console draws its charts from it
// (GET /v1/history), with no Prometheus; memory is fixed: 60 slots a
// region.

const historyMinutes = 60

// history is one region's ring of minutes.
type history struct {
	mu    sync.Mutex // taken to start a minute, never to count in one
	slots [historyMinutes]minute
}

// minute is one slot: the unix minute it counts, and its counters.
type minute struct {
	at       atomic.Int64
	requests atomic.Uint64
	failed   atomic.Uint64
	buckets  [historySlots]atomic.Uint64 // by historyBuckets' bound; the one after them: above every bound
	breaker  atomic.Int32                // the worst state seen: 0 closed, 1 half-open, 2 open
}

// historyBuckets are the latency bounds the minutes count in, in seconds:
// the router's histograms'.
var historyBuckets = latencyBuckets

// historySlots bounds a minute's buckets.
const historySlots = 32

func init() {
	if len(historyBuckets)+1 > historySlots {
		panic("geo: more latency buckets than a history minute holds")
	}
}

// slot is the slot of the minute holding now, started if it was not yet.
func (h *history) slot(now time.Time) *minute {
	at := now.Unix() / 60
	m := &h.slots[at%historyMinutes]
	if m.at.Load() == at {
		return m
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.at.Load() != at {
		m.requests.Store(0)
		m.failed.Store(0)
		for i := range m.buckets {
			m.buckets[i].Store(0)
		}

		m.breaker.Store(0)
		m.at.Store(at)
	}
	return m
}

// record counts one attempt that took seconds and failed or not.
func (h *history) record(now time.Time, seconds float64, failed bool) {
	m := h.slot(now)
	m.requests.Add(1)
	if failed {
		m.failed.Add(1)
	}
	i := 0 // a scan from the fastest bucket: most attempts end in the first few
	for i < len(historyBuckets) && seconds > historyBuckets[i] {
		i++
	}
	m.buckets[i].Add(1)
}

// breakerState records the breaker's state now: a minute keeps its worst.
func (h *history) breakerState(now time.Time, s gobreaker.State) {
	m := h.slot(now)
	for {
		old := m.breaker.Load()
		if int32(s) <= old || m.breaker.CompareAndSwap(old, int32(s)) {
			return
		}
	}
}

// MinuteFigures are one minute of a region, as /v1/history gives them.
type MinuteFigures struct {
	Start      time.Time `json:"start"`
	Requests   uint64    `json:"requests"`
	Failed     uint64    `json:"failed"`
	P99Seconds float64   `json:"p99_seconds"` // the upper bound of the bucket holding the 99th percentile; 0 without requests
	Breaker    int32     `json:"breaker"`     // the worst state: 0 closed, 1 half-open, 2 open
}

// last returns the minutes of the hour up to now, oldest first; a minute
// with no attempt has zeros, and the breaker state it had then if known.
func (h *history) last(now time.Time, breaker gobreaker.State) []MinuteFigures {
	h.breakerState(now, breaker) // the running minute knows the state now
	end := now.Unix() / 60
	out := make([]MinuteFigures, 0, historyMinutes)
	for at := end - historyMinutes + 1; at <= end; at++ {
		f := MinuteFigures{Start: time.Unix(at*60, 0).UTC()}
		m := &h.slots[(at%historyMinutes+historyMinutes)%historyMinutes]
		if m.at.Load() == at {
			f.Requests, f.Failed, f.Breaker = m.requests.Load(), m.failed.Load(), m.breaker.Load()
			f.P99Seconds = m.p99()
		}
		out = append(out, f)
	}
	return out
}

// p99 is the upper bound of the bucket that holds the 99th percentile.
func (m *minute) p99() float64 {
	var counts [historySlots]uint64
	var total uint64
	for i := range len(historyBuckets) + 1 {
		counts[i] = m.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(float64(total)*0.99 + 0.5)
	var seen uint64
	for i, n := range counts[:len(historyBuckets)+1] {
		if seen += n; seen >= rank && n > 0 {
			if i == len(historyBuckets) {
				return historyBuckets[len(historyBuckets)-1]
			}
			return historyBuckets[i]
		}
	}
	return historyBuckets[len(historyBuckets)-1]
}

// RegionHistory is one region's last hour.
type RegionHistory struct {
	Region  string          `json:"region"`
	Minutes []MinuteFigures `json:"minutes"`
}

// historyRoute answers GET /v1/history: every region's last hour, a
// minute at a time.
func (r *Router) historyRoute(ctx *fasthttp.RequestCtx) {
	now := time.Now()
	var out struct {
		Regions []RegionHistory `json:"regions"`
	}
	for _, reg := range r.cfg.Locator.Regions {
		r.mu.RLock()
		pool := r.pools[reg.Name]
		r.mu.RUnlock()
		if pool == nil {
			continue
		}
		out.Regions = append(out.Regions, RegionHistory{Region: reg.Name, Minutes: pool.history.last(now, pool.breaker.State())})
	}
	b, _ := json.Marshal(out)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
