package geo

import "sync"

// Retry budget, as Finagle and Envoy define it: over a sliding window of
// budgetWindow seconds, retries may add at most ratio of the requests plus
// budgetFloor per second. Bursts are absorbed (a region that dies takes
// every request in flight with it, and all of them may retry at once),
// while a global outage adds at most ratio + budgetFloor/s of load.
const (
	budgetWindow = 10 // seconds
	budgetFloor  = 10 // retries per second always allowed
)

// Its methods take the current time in unix seconds, which the caller
// has read anyway.
type retryBudget struct {
	ratio float64
	mu    sync.Mutex
	slots [budgetWindow]budgetSlot
}

// budgetSlot counts one second of the window.
type budgetSlot struct {
	second            int64
	requests, retries float64
}

// slot returns the slot of second now, clearing it if it is stale.
func (b *retryBudget) slot(now int64) *budgetSlot {
	s := &b.slots[now%budgetWindow]
	if s.second != now {
		*s = budgetSlot{second: now}
	}
	return s
}

func (b *retryBudget) request(now int64) {
	b.mu.Lock()
	b.slot(now).requests++
	b.mu.Unlock()
}

func (b *retryBudget) allowRetry(now int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.slot(now)
	var requests, retries float64
	for _, s := range b.slots {
		if cur.second-s.second < budgetWindow {
			requests, retries = requests+s.requests, retries+s.retries
		}
	}
	if retries >= budgetFloor*budgetWindow+b.ratio*requests {
		return false
	}
	cur.retries++
	return true
}

// refund returns a retry that was allowed but not made.
func (b *retryBudget) refund(now int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.slot(now)
	s.retries = max(0, s.retries-1)
}
