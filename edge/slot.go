package edge

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// Slot is one model an edge serves: the version answering for it, a
// rollout candidate beside it, the version being loaded and the last one
// refused. Each slot follows its own channel (a Syncer each), swaps, rolls
// out and shadows on its own: promoting one model leaves the others'
// answers alone.
type Slot struct {
	name    string
	srv     *Server
	current atomic.Pointer[Serving]
	// candidate is a second version during a staged rollout (split.go).
	candidate atomic.Pointer[Candidate]
	// refused is the last version the syncer refused, and why: readiness
	// says it, so an operator sees why a promote did not arrive.
	refused atomic.Pointer[Refusal]
	// loading is the version being fetched, verified and warmed up.
	loading atomic.Pointer[Loading]
	// previous is the digest of the version served before this one: its
	// artifact stays in the cache for a quick rollback.
	previous atomic.Pointer[string]
}

// Name is the model's name: its registry name and its OIP name.
func (sl *Slot) Name() string { return sl.name }

// Swap makes sv the version every new request for this model uses and
// returns the previous one. Requests already running finish on the
// version they started with.
func (sl *Slot) Swap(sv *Serving) *Serving {
	sv.Name = sl.name
	sl.srv.prepare(sv)
	old := sl.current.Swap(sv)
	if old != nil && old.Digest != sv.Digest {
		sl.previous.Store(&old.Digest)
	}
	modelLoaded.Set(1)
	modelSwaps.Inc()
	setModelInfo(sv)
	sl.retire(old)
	return old
}

// Current returns the serving version, or nil before the first one.
func (sl *Slot) Current() *Serving { return sl.current.Load() }

// Refused records that version was refused, and why.
func (sl *Slot) Refused(version string, err error) {
	sl.refused.Store(&Refusal{Version: version, Reason: err.Error(), At: time.Now().UTC()})
}

// LastRefusal is the last version refused, or nil.
func (sl *Slot) LastRefusal() *Refusal { return sl.refused.Load() }

// SetCandidate puts c beside the serving version, or removes the candidate
// with nil. Requests already running finish on the version they started
// with.
func (sl *Slot) SetCandidate(c *Candidate) error {
	if c != nil {
		if c.Serving == nil || c.Serving.Predictor == nil || c.Percent < 0 || c.Percent > 100 || c.ShadowRate < 0 || c.ShadowRate > 1 {
			return fmt.Errorf("invalid candidate: want a model, a percent in [0, 100] and a shadow rate in [0, 1]")
		}
		c.Serving.Name = sl.name
		sl.srv.prepare(c.Serving) // a held candidate keeps its series
	}
	if old := sl.candidate.Swap(c); old != nil {
		sl.retire(old.Serving)
	}
	return nil
}

// Candidate returns the candidate beside the serving version, or nil.
func (sl *Slot) Candidate() *Candidate { return sl.candidate.Load() }

// held returns the versions this slot holds: the stable one (if any) and,
// during a rollout, the candidate.
func (sl *Slot) held() []*Serving {
	var out []*Serving
	if cur := sl.current.Load(); cur != nil {
		out = append(out, cur)
	}
	if c := sl.candidate.Load(); c != nil {
		out = append(out, c.Serving)
	}
	return out
}

// version is the version a call names given sv, the version the split
// chose (or the stable one): sv itself when version is empty or sv's, else
// the held version named (uncounted when sv is).
func (sl *Slot) version(sv *Serving, version string) (*Serving, error) {
	if sv == nil {
		return nil, sl.notLoaded()
	}
	if version == "" || version == sv.Version {
		return sv, nil
	}
	for _, held := range sl.held() {
		if held.Version == version {
			if !sv.counted { // past its share of a rollout's figures
				return held.uncounted, nil
			}
			return held, nil
		}
	}
	return nil, httperr.New(fasthttp.StatusNotFound, "version %q of model %q not found (serving %q)", version, sl.name, sv.Version)
}

// notLoaded is the error of a call to this model before its first
// version: what is being loaded, or why the last version was refused.
func (sl *Slot) notLoaded() error {
	if l := sl.loading.Load(); l != nil {
		return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet: loading version %q of model %q (fetching, checking, warming up)", l.Version, sl.name)
	}
	if r := sl.refused.Load(); r != nil {
		return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet: version %q of model %q was refused: %s", r.Version, sl.name, r.Reason)
	}
	return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet: model %q has no version yet", sl.name)
}

// choose returns the version that answers c: the candidate for its share
// of routing keys, else stable. While a candidate is held, a caller past
// its RolloutClientRate gets the version's uncounted twin, so no one
// client weighs much in the figures a rollout step is judged on.
func (sl *Slot) choose(stable *Serving, c Caller) *Serving {
	cand := sl.candidate.Load()
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
	if s := sl.srv; s.weigh != nil && !s.weighs(c.Client, key, keyed, c.Now) {
		rolloutUncounted.Inc()
		return sv.uncounted
	}
	return sv
}

// offer samples one text the stable version answered with its label
// stableLabel (an index) for the candidate's shadow; text is copied, as
// the request's buffers are reused.
func (sl *Slot) offer(stable *Serving, text []byte, stableLabel int) {
	c := sl.candidate.Load()
	if c == nil || c.ShadowRate <= 0 || c.Serving == stable || !stable.counted || rand.Float64() >= c.ShadowRate {
		return
	}
	sh := sl.srv.shadow
	select {
	case sh.jobs <- shadowJob{candidate: c.Serving, text: append([]byte(nil), text...), stableLabel: stable.Predictor.Labels()[stableLabel]}:
	default:
		sh.dropped.Inc()
	}
}
