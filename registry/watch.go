package registry

import (
	"context"
	"sync"
	"time"

	"github.com/sentimentpro/sentiment/store"
)

// watchHub wakes long-poll watchers when a channel document gets a new
// revision. A move through this replica notifies at once; moves through
// other replicas are seen by one poller per watched document, which reads
// the newest revision number every WatchPoll while anyone waits.
type watchHub struct {
	r       *Registry
	mu      sync.Mutex
	entries map[string]*watchEntry
}

type watchEntry struct {
	rev     uint64
	changed chan struct{} // closed and replaced on every new revision
	waiters int
}

func newWatchHub(r *Registry) *watchHub {
	return &watchHub{r: r, entries: map[string]*watchEntry{}}
}

// notify records that key reached rev.
func (h *watchHub) notify(key string, rev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[key]; e != nil && rev > e.rev {
		e.rev = rev
		close(e.changed)
		e.changed = make(chan struct{})
	}
}

// watched reports whether key has a poller (someone waits on it), which
// has seen the document exist.
func (h *watchHub) watched(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[key]
	return e != nil && e.rev > 0
}

// wait returns when key's revision exceeds after or ctx is done, with the
// newest revision it knows of.
func (h *watchHub) wait(ctx context.Context, key string, after uint64) uint64 {
	h.mu.Lock()
	e := h.entries[key]
	if e == nil {
		e = &watchEntry{changed: make(chan struct{})}
		h.entries[key] = e
		go h.poll(key, e)
	}
	e.waiters++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		e.waiters--
		h.mu.Unlock()
	}()
	for {
		h.mu.Lock()
		rev, changed := e.rev, e.changed
		h.mu.Unlock()
		if rev > after {
			return rev
		}
		select {
		case <-ctx.Done():
			return rev
		case <-changed:
		}
	}
}

// poll keeps an entry's revision current while it has waiters, then
// removes it.
func (h *watchHub) poll(key string, e *watchEntry) {
	ticker := time.NewTicker(h.r.cfg.WatchPoll)
	defer ticker.Stop()
	for first := true; ; first = false {
		if !first {
			<-ticker.C
		}
		h.mu.Lock()
		if e.waiters == 0 && !first {
			delete(h.entries, key)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rev, err := store.DocRevision(ctx, h.r.store, key)
		cancel()
		if err != nil {
			h.r.log.Warn("watch poll failed", "key", key, "err", err)
			continue
		}
		h.notify(key, rev)
	}
}
