// Package backoff is the one wait between retries: doubling from a first
// wait up to a cap, with jitter so that many clients retrying together
// spread out, and a sleep that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Backoff is the wait before each retry of one operation. The zero value
// is not useful: set First and Max.
type Backoff struct {
	First, Max time.Duration
	last       time.Duration
}

// Next is the wait before the next retry: First, then twice the last, at
// most Max, plus up to a quarter more at random.
func (b *Backoff) Next() time.Duration {
	b.last = min(max(2*b.last, b.First), b.Max)
	return b.last + time.Duration(rand.Int64N(int64(b.last/4)+1))
}

// Reset starts again from First, after a success.
func (b *Backoff) Reset() { b.last = 0 }

// Sleep waits for d, or until ctx is done; it reports whether the whole
// wait passed. A wait of zero or less returns at once.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// RetryAfter reads a Retry-After header (RFC 9110 §10.2.3: seconds, or an
// HTTP date) as a wait from now, at most limit; 0 when absent, unreadable
// or past.
func RetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return min(time.Duration(max(n, 0))*time.Second, limit)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now).Truncate(time.Second), limit)
	}
	return 0
}
