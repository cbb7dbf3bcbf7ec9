package geo

import (
	"sync"
	"time"
)

// Retry budget, as Finagle and Envoy define it: over a sliding window of
// budgetWindow seconds, retries may add at most ratio of the requests plus
// budgetFloor per second. Bursts are absorbed (a region that dies takes
// every request in flight with it, and all of them may retry at once),
// while a global outage adds at most ratio + budgetFloor/s of load.
const (
	budgetWindow = 10 // seconds
	budgetFloor  = 10 // retries per second always allowed
)

type retryBudget struct {
	ratio float64
	now   func() int64 // unix seconds; nil means the clock
	mu    sync.Mutex
	slots [budgetWindow]budgetSlot
}

// budgetSlot counts one second of the window.
type budgetSlot struct {
	second            int64
	requests, retries float64
}

// slot returns the current second's slot, clearing it if it is stale.
func (b *retryBudget) slot() *budgetSlot {
	now := time.Now().Unix()
	if b.now != nil {
		now = b.now()
	}
	s := &b.slots[now%budgetWindow]
	if s.second != now {
		*s = budgetSlot{second: now}
	}
	return s
}

func (b *retryBudget) request() {
	b.mu.Lock()
	b.slot().requests++
	b.mu.Unlock()
}

func (b *retryBudget) allowRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.slot()
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
func (b *retryBudget) refund() {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.slot()
	s.retries = max(0, s.retries-1)
}
