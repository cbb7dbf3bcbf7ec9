// Package edge is the data plane: a fasthttp server that answers sentiment
// predictions from a model held in memory (/v1/predict, /v1/predict/batch
// and the Open Inference Protocol /v2 routes), swaps in new models
// atomically without failing or delaying a request, and keeps answering
// from its last good model when the registry, S3 or Consul are down.
package edge

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/ratelimit"
)

// Serving is the model an edge answers with, and where it came from.
type Serving struct {
	Predictor inference.Predictor
	Name      string // the registry's model name; the OIP model name
	Version   string // the registry version, or "embedded"
	Digest    string
	Source    string // "registry", "cache", "embedded" or "file"
	LoadedAt  time.Time
	// Bytes is the artifact's size: what the memory budget counts.
	Bytes int64

	monitor   monitor  // made by prepare
	answer    []byte   // ,"model":…,"version":…,"region":… of every answer; made by prepare
	labelKeys [][]byte // each label as a JSON object key, "name":; made by prepare
	// uncounted is this version answering a request that must not count
	// in its figures (RolloutClientRate); it is itself uncounted. Made by
	// prepare.
	uncounted *Serving
	counted   bool
	stats     *inferStats // Triton's statistics, shared with the twin; made by prepare
}

// served records one prediction request this version answered.
func (sv *Serving) served(code int, seconds float64) {
	if sv.counted {
		sv.monitor.served(code, seconds)
	}
}

// observe records one prediction of a text of textBytes bytes: its most
// probable label and that label's probability.
func (sv *Serving) observe(label int, score float32, textBytes int) {
	if !sv.counted {
		return
	}
	sv.monitor.labels[label].Inc()
	sv.monitor.score.Update(float64(score))
	sv.monitor.textBytes.Update(float64(textBytes))
}

// Config is the serving configuration, built in main.
type Config struct {
	Region string
	// Models are the names of the models this edge serves, each from its
	// own channel (a Slot each); the first is the default, the one
	// /v1/predict answers without "model". Default: "sentiment".
	Models []string
	// MemoryBudget bounds the bytes of the model versions held at once
	// (every model's stable version and candidate, and one being loaded);
	// a version that does not fit is refused with the reason. 0: no bound.
	MemoryBudget int64
	// Size limits: the whole body, one text, texts in a batch.
	MaxBodyBytes int
	MaxTextBytes int
	MaxBatch     int
	// RatePerMinute and RateBurst set the per-client token bucket;
	// RatePerMinute <= 0 disables rate limiting.
	RatePerMinute float64
	RateBurst     int
	// TrustedProxies may set X-Forwarded-For and X-Routing-Key; anyone
	// else's are ignored.
	TrustedProxies []netip.Prefix
	// TrustClientCerts makes every client that presented a verified
	// certificate (a geo router, a peer edge: mutual TLS) a trusted proxy
	// too, whatever its address: pods come and go, certificates stay.
	TrustClientCerts bool
	// RolloutClientRate is how many of one client's requests a minute
	// (burst as many) count in the rollout figures of a version while a
	// candidate is beside it; its other requests are answered but not
	// counted. A client is its routing key when a trusted proxy set one,
	// else its address. 0 counts every request.
	RolloutClientRate float64
	TLS               bool // adds Strict-Transport-Security
	// AccessLogSample is the share of requests given an access log line
	// (0 none, 1 all).
	AccessLogSample float64
	Logger          *slog.Logger
	// Peers, if set, answers for this edge while it has no model at all.
	Peers *Peers
}

// Defaults for Config fields left zero.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultMaxTextBytes = 16 << 10
	DefaultMaxBatch     = 64
)

// Server serves predictions from the models it holds, one Slot each.
type Server struct {
	cfg      Config
	log      *slog.Logger
	slots    []*Slot          // in Config.Models' order: slots[0] is the default
	byName   map[string]*Slot // read only after NewServer
	draining atomic.Bool
	door     *frontdoor.Door
	shadow   *shadow
	weigh    *ratelimit.Limiter // RolloutClientRate, or nil
	budget   budget
	cache    blobKeeper
}

// NewServer returns a server with no model; call Swap to give it one.
func NewServer(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = DefaultMaxTextBytes
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []string{"sentiment"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "edge"), byName: map[string]*Slot{}}
	s.budget.limit = cfg.MemoryBudget
	for _, name := range cfg.Models {
		if s.byName[name] != nil {
			continue
		}
		sl := &Slot{name: name, srv: s}
		s.slots = append(s.slots, sl)
		s.byName[name] = sl
	}
	s.door = &frontdoor.Door{IDs: obs.NewRequestIDs(), Access: frontdoor.AccessLog{Rate: cfg.AccessLogSample, Log: s.log},
		TLS: cfg.TLS, RatePerMinute: cfg.RatePerMinute, Limited: rateLimited}
	s.shadow = newShadow()
	if cfg.RatePerMinute > 0 {
		s.door.Limiter = ratelimit.New(cfg.RatePerMinute, cfg.RateBurst)
	}
	if cfg.RolloutClientRate > 0 {
		s.weigh = ratelimit.New(cfg.RolloutClientRate, 0)
	}
	return s
}

// Swap makes sv the version of its model (sv.Name; "" is the default
// model) that every new request uses, and returns the previous one.
func (s *Server) Swap(sv *Serving) *Serving {
	sl := s.slotOf(sv.Name)
	if sv.Name == "" {
		sv.Name = sl.name
	}
	return sl.Swap(sv)
}

// slotOf is the slot of a model this server was built to serve ("": the
// default). Any other name is a programming error.
func (s *Server) slotOf(name string) *Slot {
	if name == "" {
		return s.slots[0]
	}
	sl := s.byName[name]
	if sl == nil {
		panic(fmt.Sprintf("edge: model %q is not one this server serves (%s)", name, strings.Join(s.cfg.Models, ", ")))
	}
	return sl
}

// Slot is the slot of the model called name, or nil if this server does
// not serve it.
func (s *Server) Slot(name string) *Slot { return s.byName[name] }

// Slots are the models this server serves, the default first.
func (s *Server) Slots() []*Slot { return s.slots }

// prepare readies sv to serve, once: its metric series, and the part of
// every answer that names the model, its version and this region (built
// once, so a request appends it without escaping it again).
func (s *Server) prepare(sv *Serving) {
	if sv.answer != nil { // serving already, or held as a candidate
		return
	}
	sv.monitor = newMonitor(sv.Name, sv.Predictor.Labels(), sv.Version)
	sv.stats = new(inferStats)
	if b, ok := sv.Predictor.(batcher); ok {
		registerBatcher(sv.Name, sv.Version, b)
	}
	for _, l := range sv.Predictor.Labels() {
		sv.labelKeys = append(sv.labelKeys, append(httperr.AppendJSONString(nil, l), ':'))
	}
	b := appendField(nil, "model", sv.Name, false)
	b = appendField(b, "version", sv.Version, false)
	sv.answer = appendField(b, "region", s.cfg.Region, false)
	sv.counted = true
	twin := *sv
	twin.counted = false
	sv.uncounted = &twin
	twin.uncounted = &twin
}

// Current returns the default model's serving version, or nil before the
// first one.
func (s *Server) Current() *Serving { return s.slots[0].Current() }

// SetCandidate puts c beside the default model's serving version (nil
// removes it): Slot.SetCandidate of the first model.
func (s *Server) SetCandidate(c *Candidate) error { return s.slots[0].SetCandidate(c) }

// Candidate is the default model's rollout candidate, or nil.
func (s *Server) Candidate() *Candidate { return s.slots[0].Candidate() }

// Ready reports whether the edge should receive traffic: every model it
// serves has a verified version (as Triton's strict readiness has it), and
// it is not draining.
func (s *Server) Ready() bool { return s.unready() == nil && !s.draining.Load() }

// unready is the first model with no version yet, or nil.
func (s *Server) unready() *Slot {
	for _, sl := range s.slots {
		if sl.current.Load() == nil {
			return sl
		}
	}
	return nil
}

// Refusal is a version the edge refused to serve.
type Refusal struct {
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Loading is a version the edge is fetching, checking and warming up:
// it serves only once that is done.
type Loading struct {
	Version string    `json:"version"`
	Since   time.Time `json:"since"`
}

// SetDraining turns readiness off before a graceful shutdown.
func (s *Server) SetDraining(d bool) { s.draining.Store(d) }

// Close stops background work (the rate limiter's sweeper, the shadow).
func (s *Server) Close() {
	s.shadow.close()
	if s.door.Limiter != nil {
		s.door.Limiter.Close()
	}
	if s.weigh != nil {
		s.weigh.Close()
	}
}
