package edge

import (
	"errors"
	"fmt"
	"hash/fnv"
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
	counters := map[string]*[2]*metrics.Counter{} // by model and version: disagree, agree
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
	key := j.candidate.Name + "\x00" + j.candidate.Version
	c := counters[key]
	if c == nil {
		c = &[2]*metrics.Counter{agreement(j.candidate, false), agreement(j.candidate, true)}
		counters[key] = c
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

// agreement counts the candidate's shadow predictions that agreed, or
// not, with the stable version's.
func agreement(sv *Serving, agreed bool) *metrics.Counter {
	result := "disagree"
	if agreed {
		result = "agree"
	}
	return metrics.GetOrCreateCounter(fmt.Sprintf(`edge_shadow_predictions_total{model=%q,version=%q,result=%q}`, sv.Name, sv.Version, result))
}
