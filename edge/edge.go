// Package edge is the data plane: a fasthttp server that answers sentiment
// predictions from a model held in memory (/v1/predict, /v1/predict/batch
// and the Open Inference Protocol /v2 routes), swaps in new models
// atomically without failing or delaying a request, and keeps answering
// from its last good model when the registry, S3 or Consul are down.
package edge

import (
	"log/slog"
	"net/netip"
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
	Region    string
	ModelName string // name the /v2 routes answer to
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

// Server serves predictions from the current model.
type Server struct {
	cfg      Config
	log      *slog.Logger
	current  atomic.Pointer[Serving]
	draining atomic.Bool
	// refused is the last version the syncer refused, and why: readiness
	// says it, so an operator sees why a promote did not arrive.
	refused atomic.Pointer[Refusal]
	// loading is the version being fetched, verified and warmed up.
	loading atomic.Pointer[Loading]
	door    *frontdoor.Door
	// candidate is a second version during a staged rollout (split.go).
	candidate atomic.Pointer[Candidate]
	shadow    *shadow
	weigh     *ratelimit.Limiter // RolloutClientRate, or nil
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
	if cfg.ModelName == "" {
		cfg.ModelName = "sentiment"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "edge")}
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

// Swap makes sv the model every new request uses and returns the previous
// one. Requests already running finish on the model they started with.
func (s *Server) Swap(sv *Serving) *Serving {
	s.prepare(sv)
	old := s.current.Swap(sv)
	modelLoaded.Set(1)
	modelSwaps.Inc()
	setModelInfo(sv)
	s.retire(old)
	return old
}

// prepare readies sv to serve, once: its metric series, and the part of
// every answer that names the model, its version and this region (built
// once, so a request appends it without escaping it again).
func (s *Server) prepare(sv *Serving) {
	if sv.answer != nil { // serving already, or held as a candidate
		return
	}
	sv.monitor = newMonitor(sv.Predictor.Labels(), sv.Version)
	sv.stats = new(inferStats)
	if b, ok := sv.Predictor.(batcher); ok {
		registerBatcher(sv.Version, b)
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

// Current returns the serving model, or nil before the first one.
func (s *Server) Current() *Serving { return s.current.Load() }

// Ready reports whether the edge should receive traffic: it has a verified
// model and is not draining.
func (s *Server) Ready() bool { return s.current.Load() != nil && !s.draining.Load() }

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

// Refused records that version was refused, and why.
func (s *Server) Refused(version string, err error) {
	s.refused.Store(&Refusal{Version: version, Reason: err.Error(), At: time.Now().UTC()})
}

// LastRefusal is the last version refused, or nil.
func (s *Server) LastRefusal() *Refusal { return s.refused.Load() }

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
