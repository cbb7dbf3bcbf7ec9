package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/distrib"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// fleet is the simulated followers: the edge's watch and fetch code in
// goroutines, each from its own loopback address (the registry limits
// long-polls per address, as it would per edge).
type fleet struct {
	h      *harness
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	size   int
	keys   []ed25519.PublicKey
	peers  map[string]*http.Client // to the region's blob servers
	stats  *httpStats
	log    *slog.Logger // the followers' warnings: <dir>/logs/followers.log

	mu       sync.Mutex
	arrivals map[string][]arrival // digest → who got it, when
}

type arrival struct {
	region string
	at     time.Time
}

func newFleet(h *harness) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	var logTo io.Writer = io.Discard
	if lf, err := os.Create(filepath.Join(h.cfg.Dir, "logs", "followers.log")); err == nil {
		logTo = lf // closed when the harness exits
	}
	f := &fleet{h: h, ctx: ctx, cancel: cancel, peers: map[string]*http.Client{}, stats: &httpStats{},
		arrivals: map[string][]arrival{}, log: slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	pub, _ := h.priv.Public().(ed25519.PublicKey)
	f.keys = []ed25519.PublicKey{pub}
	for _, region := range h.cfg.Regions {
		peers := &http.Client{Transport: f.stats.wrap("peer", &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute})}
		f.peers[region] = peers
	}
	return f
}

// grow starts followers until there are n, spread over the regions, each
// already holding digest (a warm cache, as an edge that restarted).
func (f *fleet) grow(n int, digest string) {
	for ; f.size < n; f.size++ {
		region := f.h.cfg.Regions[f.size%len(f.h.cfg.Regions)]
		f.wg.Add(1)
		go func(i int) {
			defer f.wg.Done()
			f.follow(region, i, digest)
		}(f.size)
	}
}

func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// follow is one follower: the edge's Watcher, and its Fetcher into a
// target that hashes and keeps nothing; then the signature check.
func (f *fleet) follow(region string, i int, have string) {
	ip := net.IPv4(127, byte(20+i/62500), byte(i/250%250), byte(i%250+1))
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	transport := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}
	client := &regclient.Client{BaseURL: f.h.regURL, Token: readerToken,
		HTTP: &http.Client{Transport: f.stats.wrap("registry", transport), Timeout: 2 * time.Minute}}
	// Its own Consul client, from its address: the agent limits
	// connections per client address, as a fleet's agents would see one
	// edge each.
	consul, err := api.NewClient(&api.Config{Address: f.h.consul.Agent("dc-" + region).HTTPAddr(),
		HttpClient: &http.Client{Transport: f.stats.wrap("consul", &http.Transport{DialContext: dialer.DialContext, IdleConnTimeout: time.Minute})}})
	if err != nil {
		panic(err) // only a malformed address fails, and the harness made it
	}
	finder := &distrib.Consul{Client: consul, Service: "sentiment-edge" + distrib.ServiceSuffix, Region: region, Scheme: "http", HTTP: f.peers[region]}
	log := f.log.With("follower", i, "region", region)
	w := edge.NewWatcher(edge.WatchConfig{Client: client, Model: modelName, Channel: channel, Region: region, Logger: log})
	fetcher := &distrib.Fetcher{Registry: distrib.Registry{Client: client}, Finder: finder, Log: log}
	w.Run(f.ctx, func(ctx context.Context, res wire.Resolution) error {
		f.stats.resolves.Add(1)
		v := res.Version
		if v.Digest == have {
			return nil
		}
		start := time.Now()
		got, err := fetcher.Fetch(ctx, v.Digest, distrib.Discard{})
		if took := time.Since(start); took > 10*time.Second {
			log.Warn("slow fetch", "took", took, "result", fmt.Sprintf("%+v", got), "err", err)
		}
		if err != nil {
			if errors.Is(err, distrib.ErrDigest) {
				return fmt.Errorf("%w: %v", edge.ErrRejected, err)
			}
			return err
		}
		if v.Signature == nil {
			return fmt.Errorf("%w: unsigned", edge.ErrRejected)
		}
		if _, err := model.Verify(*v.Signature, v.Digest, f.keys); err != nil {
			return fmt.Errorf("%w: %v", edge.ErrRejected, err)
		}
		have = v.Digest
		f.mu.Lock()
		f.arrivals[v.Digest] = append(f.arrivals[v.Digest], arrival{region: region, at: time.Now()})
		f.mu.Unlock()
		return nil
	})
}

// arrived returns who holds digest so far.
func (f *fleet) arrived(digest string) []arrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]arrival(nil), f.arrivals[digest]...)
}

// httpStats counts the followers' requests by destination, and their 5xx
// answers: planned (503 with Retry-After, a source at its limit) or not.
type httpStats struct {
	consul, registry, peer atomic.Int64
	resolves               atomic.Int64
	planned, unplanned     atomic.Int64
	mu                     sync.Mutex
	firstUnplanned         string
}

func (s *httpStats) wrap(kind string, next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		switch kind {
		case "consul":
			s.consul.Add(1)
		case "registry":
			s.registry.Add(1)
		default:
			s.peer.Add(1)
		}
		resp, err := next.RoundTrip(req)
		if err == nil && resp.StatusCode >= 500 {
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
				s.planned.Add(1)
			} else if s.unplanned.Add(1) == 1 {
				s.mu.Lock()
				s.firstUnplanned = fmt.Sprintf("%s %s from %s: %s", req.Method, req.URL.Path, kind, resp.Status)
				s.mu.Unlock()
			}
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
