package discovery

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/internal/backoff"
)

// Snapshot is the set of instances of one service in one datacenter at a
// Consul index.
type Snapshot struct {
	Service    string
	Datacenter string
	Index      uint64
	Instances  []Instance // all instances, each with its health status
}

// Passing returns the instances whose checks all pass.
func (s Snapshot) Passing() []Instance {
	var out []Instance
	for _, in := range s.Instances {
		if in.Passing() {
			out = append(out, in)
		}
	}
	return out
}

// Watcher follows one service in one datacenter with blocking queries and
// calls OnSnapshot whenever the result changes.
type Watcher struct {
	Client     *api.Client
	Service    string
	Datacenter string // "" is the agent's own datacenter
	// Wait bounds one blocking query (default 30s).
	Wait time.Duration
	// MinInterval spaces consecutive queries so a flapping service cannot
	// turn the loop into a busy one (default 100ms).
	MinInterval time.Duration
	// OnSnapshot receives each changed snapshot; it runs on the watcher's
	// goroutine and must not block for long.
	OnSnapshot func(Snapshot)
	// OnError is told about failed queries (optional); the watcher keeps
	// its last snapshot and retries with backoff.
	OnError func(error)
	Logger  *slog.Logger
}

// Run watches until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	wait := orDefault(w.Wait, 30*time.Second)
	minInterval := orDefault(w.MinInterval, 100*time.Millisecond)
	log := w.Logger
	if log == nil {
		log = slog.Default().With("component", "discovery")
	}
	var index uint64
	first := true
	retry := backoff.Backoff{First: 250 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		start := time.Now()
		opts := (&api.QueryOptions{Datacenter: w.Datacenter, WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		entries, meta, err := w.Client.Health().Service(w.Service, "", false, opts)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := retry.Next()
			log.Warn("consul watch failed", "service", w.Service, "dc", w.Datacenter, "err", err, "retry_in", d)
			if w.OnError != nil {
				w.OnError(err)
			}
			backoff.Sleep(ctx, d)
			continue
		}
		retry.Reset()
		// Deliver the first answer and every index change. An index that
		// went backwards (agent restart, snapshot restore) is a change too:
		// following Consul's advice we take the new index as the base
		// instead of waiting for the old one to come round again. Index 0
		// is never used as a wait index after the first query, or the
		// queries would not block.
		if first || meta.LastIndex != index {
			w.deliver(entries, meta.LastIndex)
		}
		first = false
		index = max(meta.LastIndex, 1)
		backoff.Sleep(ctx, minInterval-time.Since(start))
	}
}

func (w *Watcher) deliver(entries []*api.ServiceEntry, index uint64) {
	dc := w.Datacenter
	snap := Snapshot{Service: w.Service, Datacenter: dc, Index: index}
	for _, e := range entries {
		if dc == "" {
			dc = e.Node.Datacenter
			snap.Datacenter = dc
		}
		snap.Instances = append(snap.Instances, InstanceFrom(dc, e))
	}
	if w.OnSnapshot != nil {
		w.OnSnapshot(snap)
	}
}

// FollowRegions watches service in each region's datacenter (region →
// datacenter; "" is the agent's own) and hands update a region's passing
// instances whose meta "region" is that region, as host:port, at every
// change, until ctx ends. wg counts the watchers. The geo router follows
// its edges this way, and an edge its peer regions.
func FollowRegions(ctx context.Context, wg *sync.WaitGroup, c *api.Client, service string, datacenters map[string]string,
	update func(region string, addrs []string), log *slog.Logger) {
	FollowRegionInstances(ctx, wg, c, service, datacenters, func(region string, ins []Instance) {
		addrs := make([]string, 0, len(ins))
		for _, in := range ins {
			addrs = append(addrs, in.HostPort())
		}
		update(region, addrs)
	}, log)
}

// FollowRegionInstances is FollowRegions handing over the instances
// themselves (their meta, e.g. an edge's gRPC port).
func FollowRegionInstances(ctx context.Context, wg *sync.WaitGroup, c *api.Client, service string, datacenters map[string]string,
	update func(region string, ins []Instance), log *slog.Logger) {
	for region, dc := range datacenters {
		w := &Watcher{Client: c, Service: service, Datacenter: dc, Logger: log,
			Wait: 10 * time.Second, MinInterval: 50 * time.Millisecond,
			OnSnapshot: func(s Snapshot) {
				var ins []Instance
				for _, in := range s.Passing() {
					if in.Meta[MetaRegion] == region {
						ins = append(ins, in)
					}
				}
				update(region, ins)
			}}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx) }()
	}
}

// GRPCAddr is the instance's gRPC address from its MetaGRPCPort, or ""
// when it serves no gRPC.
func (i Instance) GRPCAddr() string {
	port, err := strconv.Atoi(i.Meta[MetaGRPCPort])
	if err != nil || port <= 0 || port > 65535 {
		return ""
	}
	return net.JoinHostPort(i.Address, strconv.Itoa(port))
}
