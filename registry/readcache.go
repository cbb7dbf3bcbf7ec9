package registry

import (
	"context"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/registry/wire"
)

var (
	resolutionsCached = metrics.NewCounter(`registry_resolutions_total{source="cache"}`)
	resolutionsRead   = metrics.NewCounter(`registry_resolutions_total{source="store"}`)
)

// resolutionTTL bounds how long a cached resolution outlives an edit of a
// version it names (a description, through another replica); a channel's
// move replaces it at once.
const resolutionTTL = 10 * time.Second

// readCache serves the resolutions that woken long-polls ask for: when a
// channel moves, every edge watching it wakes in the same second and asks
// for the same answer. Each replica reads the channel and the versions it
// names once per revision and region (the first caller reads, the others
// wait for it), instead of once per edge: a fleet's wake-up costs S3 a
// handful of requests, not thousands.
type readCache struct {
	mu      sync.Mutex
	entries map[resolutionKey]*resolutionEntry
}

type resolutionKey struct{ channelKey, region string }

type resolutionEntry struct {
	mu  sync.Mutex // held by the caller reading the store
	res wire.Resolution
	at  time.Time
	ok  bool
}

func (c *readCache) entry(k resolutionKey) *resolutionEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[resolutionKey]*resolutionEntry{}
	}
	e := c.entries[k]
	if e == nil {
		e = &resolutionEntry{}
		c.entries[k] = e
	}
	return e
}

// cachedResolution is model/channel's resolution for region at revision
// rev or newer, read from the store at most once per revision (and per
// resolutionTTL).
func (r *Registry) cachedResolution(ctx context.Context, model, channel, region string, rev uint64) (wire.Resolution, error) {
	e := r.reads.entry(resolutionKey{channelKey(model, channel), region})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ok && e.res.Revision >= rev && time.Since(e.at) < resolutionTTL {
		resolutionsCached.Inc()
		return e.res, nil
	}
	c, err := r.GetChannel(ctx, model, channel)
	if err != nil {
		return wire.Resolution{}, err
	}
	res, err := r.resolution(ctx, c, region)
	if err != nil {
		return wire.Resolution{}, err
	}
	resolutionsRead.Inc()
	e.res, e.at, e.ok = res, time.Now(), true
	return res, nil
}
