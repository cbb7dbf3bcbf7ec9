// Package ratelimit is the per-client limit of the edge and the geo
// router: a token bucket per client address (IPv6 by /64) filling at
// perMinute/60 a second up to a burst, like Envoy's local rate limit. It
// is per process: N routers let a client through N times the rate if its
// requests are spread over them (see docs/SECURITY.md).
package ratelimit

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Limiter is a per-client token bucket: rate tokens per minute, up to
// burst. Clients are keyed by address (IPv6 by /64, which one host
// usually holds). Buckets idle long enough to be full are swept.
type Limiter struct {
	perSec float64
	burst  float64
	seed   maphash.Seed
	shards [64]limiterShard
	stop   chan struct{}
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[key]*bucket
}

// key names a bucket: an address's 16 bytes, or a hash of another key.
type key [16]byte

type bucket struct {
	tokens float64
	last   int64 // unix nanos
}

// New returns a limiter of perMinute requests a minute per client, with
// bursts of up to burst (default: a minute's worth, so that the 101st of
// 100 requests sent at once is the first refused). Close stops its sweeper.
func New(perMinute float64, burst int) *Limiter {
	if burst <= 0 {
		burst = max(1, int(perMinute))
	}
	l := &Limiter{perSec: perMinute / 60, burst: float64(burst), seed: maphash.MakeSeed(), stop: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].buckets = map[key]*bucket{}
	}
	go l.sweep()
	return l
}

// Allow takes a token for addr. When none is left it returns false and how
// long until one will be.
func (l *Limiter) Allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	return l.take(key(addr.Unmap().As16()), now)
}

// AllowKey is Allow for a client named by something other than its
// address (a routing key a trusted gateway set). Keys are hashed apart
// from addresses, so no key shares an address's bucket.
func (l *Limiter) AllowKey(k []byte, now time.Time) (bool, time.Duration) {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteByte(1) // apart from addresses
	h.Write(k)
	lo := h.Sum64()
	h.WriteByte(2)
	var kk key
	binary.LittleEndian.PutUint64(kk[:8], lo)
	binary.LittleEndian.PutUint64(kk[8:], h.Sum64())
	return l.take(kk, now)
}

func (l *Limiter) take(k key, now time.Time) (bool, time.Duration) {
	sh := &l.shards[maphash.Bytes(l.seed, k[:])%uint64(len(l.shards))]
	ns := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[k]
	if b == nil {
		b = &bucket{tokens: l.burst, last: ns}
		sh.buckets[k] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(ns-b.last)/1e9*l.perSec)
	b.last = ns
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perSec * 1e9)
	return false, wait
}

func (l *Limiter) sweep() {
	full := time.Duration(l.burst / l.perSec * 1e9)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			cutoff := now.Add(-full).UnixNano()
			for i := range l.shards {
				sh := &l.shards[i]
				sh.mu.Lock()
				for k, b := range sh.buckets {
					if b.last < cutoff {
						delete(sh.buckets, k)
					}
				}
				sh.mu.Unlock()
			}
		}
	}
}

// Close stops the sweeper.
func (l *Limiter) Close() { close(l.stop) }

// RetryAfter is the Retry-After value, in whole seconds rounded up, of a
// wait Allow returned.
func RetryAfter(wait time.Duration) string { return strconv.Itoa(int(wait/time.Second) + 1) }
