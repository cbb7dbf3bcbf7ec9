package edge

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/internal/clientip"
)

// Candidate is a second model version held beside the serving (stable)
// one during a staged rollout: it answers Percent of the prediction
// requests, chosen by a sticky key, and scores a copy of ShadowRate of the
// stable version's texts off the hot path, where only the stable answer
// is returned and the agreement is counted.
type Candidate struct {
	Serving    *Serving
	Percent    float64 // share of requests it answers, 0 to 100
	ShadowRate float64 // share of the stable version's texts it scores in the shadow, 0 to 1
}

// routingKeyHeader lets a trusted proxy (a gateway that knows the user)
// choose the key that makes the split sticky (a user or session id);
// without it the client's address is the key.
const routingKeyHeader = "X-Routing-Key"

// maxRoutingKey bounds the part of the key that is hashed.
const maxRoutingKey = 256

// SetCandidate puts c beside the serving model, or removes the candidate
// with nil. Requests already running finish on the version they started
// with.
func (s *Server) SetCandidate(c *Candidate) error {
	if c != nil {
		if c.Serving == nil || c.Serving.Predictor == nil || c.Percent < 0 || c.Percent > 100 || c.ShadowRate < 0 || c.ShadowRate > 1 {
			return fmt.Errorf("invalid candidate: want a model, a percent in [0, 100] and a shadow rate in [0, 1]")
		}
		s.prepare(c.Serving) // a held candidate keeps its series
	}
	if old := s.candidate.Swap(c); old != nil {
		s.retire(old.Serving)
	}
	return nil
}

// Candidate returns the candidate beside the serving model, or nil.
func (s *Server) Candidate() *Candidate { return s.candidate.Load() }

// choose returns the version that answers c: the candidate for its share
// of routing keys, else stable. While a candidate is held, a caller past
// its RolloutClientRate gets the version's uncounted twin, so no one
// client weighs much in the figures a rollout step is judged on.
func (s *Server) choose(stable *Serving, c Caller) *Serving {
	cand := s.candidate.Load()
	if cand == nil {
		return stable
	}
	key, keyed := c.Key, len(c.Key) > 0
	if !keyed {
		a := c.Client.As16()
		key = a[:]
	}
	sv := stable
	if cand.Percent > 0 && bucket(key) < cand.Percent*100 {
		sv = cand.Serving
	}
	if s.weigh != nil && !s.weighs(c.Client, key, keyed, c.Now) {
		rolloutUncounted.Inc()
		return sv.uncounted
	}
	return sv
}

// weighs takes one of the client's counted requests: the routing key's
// when a trusted proxy set one, else the address's (IPv6 by /64).
func (s *Server) weighs(client netip.Addr, key []byte, keyed bool, now time.Time) bool {
	if keyed {
		ok, _ := s.weigh.AllowKey(key, now)
		return ok
	}
	ok, _ := s.weigh.Allow(client, now)
	return ok
}

// caller is the request's Caller: the client, and the routing key a
// trusted proxy passed on. A client's own key is ignored: it would let the
// client pick the version that answers it, and so steer the figures a
// rollout is judged on (docs/SECURITY.md).
func (s *Server) caller(ctx *fasthttp.RequestCtx, now time.Time) Caller {
	peer := clientip.Of(ctx.RemoteIP())
	c := Caller{Client: peer, Now: now}
	if !s.fromProxy(ctx, peer) {
		return c
	}
	if xff := ctx.Request.Header.PeekCanonical(forwardedForKey); len(xff) > 0 {
		c.Client = clientip.Forwarded(peer, xff, s.cfg.TrustedProxies)
	}
	if k := ctx.Request.Header.Peek(routingKeyHeader); len(k) > 0 {
		c.Key = k[:min(len(k), maxRoutingKey)]
	}
	return c
}

// bucket maps a key to one of 10,000 buckets, the same one every time and
// on every edge, so a client sees one version for the whole rollout step.
func bucket(key []byte) float64 {
	h := fnv.New64a()
	h.Write(key)
	return float64(h.Sum64() % 10000)
}

// shadowJob is one text the candidate scores in the shadow.
type shadowJob struct {
	candidate   *Serving
	text        []byte
	stableLabel string // the stable version's most probable label
}

// shadow scores sampled texts with the candidate on one goroutine,
// through a bounded queue: when it is full a sample is dropped and
// counted, never waited for.
type shadow struct {
	jobs    chan shadowJob
	dropped *metrics.Counter
	stop    chan struct{}
	stopped sync.Once
	done    sync.WaitGroup
	// The worker goroutine's scratch.
	text  [1]string
	probs []float32
}

const shadowQueue = 1024

func newShadow() *shadow {
	sh := &shadow{jobs: make(chan shadowJob, shadowQueue), stop: make(chan struct{}),
		dropped: metrics.GetOrCreateCounter(`edge_shadow_dropped_total`)}
	sh.done.Add(1)
	go sh.run()
	return sh
}

// shadowPause lets sampled texts gather after the first of a batch: the
// goroutine wakes once per batch rather than once per sampled request,
// which on a busy edge is most of what the shadow would cost. The queue
// holds a pause's worth at 200,000 samples a second.
const shadowPause = 5 * time.Millisecond

func (sh *shadow) run() {
	defer sh.done.Done()
	counters := map[string]*[2]*metrics.Counter{} // by version: disagree, agree
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case j := <-sh.jobs:
			sh.score(j, counters)
		}
		pause.Reset(shadowPause)
		select {
		case <-sh.stop:
			return
		case <-pause.C:
		}
		for drained := false; !drained; {
			select {
			case j := <-sh.jobs:
				sh.score(j, counters)
			default:
				drained = true
			}
		}
	}
}

// score runs the candidate on one sampled text and counts the agreement:
// whether the candidate's most probable label is the stable version's
// (compared by name, so two models may order their labels differently).
func (sh *shadow) score(j shadowJob, counters map[string]*[2]*metrics.Counter) {
	c := counters[j.candidate.Version]
	if c == nil {
		c = &[2]*metrics.Counter{agreement(j.candidate.Version, false), agreement(j.candidate.Version, true)}
		counters[j.candidate.Version] = c
	}
	labels := j.candidate.Predictor.Labels()
	sh.probs = grow(sh.probs, len(labels))
	sh.text[0] = b2s(j.text)
	if err := j.candidate.Predictor.Predict(sh.text[:], sh.probs); err != nil {
		if errors.Is(err, inference.ErrOverloaded) { // a busy candidate's batcher: a sample lost, not a fault
			sh.dropped.Inc()
			return
		}
		predictErrors.Inc()
		return
	}
	if labels[inference.ArgMax(sh.probs)] == j.stableLabel {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}

// close stops the goroutine; it may be called more than once.
func (sh *shadow) close() {
	sh.stopped.Do(func() { close(sh.stop) })
	sh.done.Wait()
}

// offer samples one text the stable version answered with its label
// stableLabel (an index) for the candidate's shadow; text is copied, as
// the request's buffers are reused.
func (s *Server) offer(stable *Serving, text []byte, stableLabel int) {
	c := s.candidate.Load()
	if c == nil || c.ShadowRate <= 0 || c.Serving == stable || !stable.counted || rand.Float64() >= c.ShadowRate {
		return
	}
	select {
	case s.shadow.jobs <- shadowJob{candidate: c.Serving, text: append([]byte(nil), text...), stableLabel: stable.Predictor.Labels()[stableLabel]}:
	default:
		s.shadow.dropped.Inc()
	}
}

// agreement counts the candidate's shadow predictions that agreed, or
// not, with the stable version's.
func agreement(version string, agreed bool) *metrics.Counter {
	result := "disagree"
	if agreed {
		result = "agree"
	}
	return metrics.GetOrCreateCounter(fmt.Sprintf(`edge_shadow_predictions_total{version=%q,result=%q}`, version, result))
}
