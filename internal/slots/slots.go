// Package slots counts what each key holds open at once (a token's
// blocking reads, a session's live streams) against a limit.
package slots

import "sync"

// Counts is the number of slots each key holds. The zero value is ready.
type Counts struct {
	mu sync.Mutex
	n  map[string]int
}

// Acquire takes a slot for key if it holds fewer than limit.
func (c *Counts) Acquire(key string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[key] >= limit {
		return false
	}
	c.n[key]++
	return true
}

// Release gives back a slot Acquire took for key.
func (c *Counts) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}
