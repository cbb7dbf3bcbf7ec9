package edge

import (
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/internal/httperr"
)

// The inference core: every protocol's prediction route (/v1/predict, the
// batch route, OIP infer) decodes its request into an Inference, calls
// Infer, and encodes what Infer filled in. Choosing the version (the
// rollout's split, or the one a path names), predicting, the figures a
// rollout is judged on and the shadow are written here once, for any
// inference.Predictor.

// Caller is who asks: what the candidate split and the per-client weight
// of a rollout's figures key on.
type Caller struct {
	Client netip.Addr // the client, behind trusted proxies
	Key    []byte     // a routing key a trusted proxy set, or nil
	Now    time.Time
}

// Inference is one request to the inference core. The transport fills
// Caller, Model, Version and Texts (checked: valid UTF-8 within the
// limits); Infer fills the rest. Inferences are pooled: see newInference.
type Inference struct {
	Caller  Caller
	Model   string   // the model asked for; "" is the edge's default model
	Version string   // a held version the caller names; "" lets the split choose
	Texts   [][]byte // views of the request's buffers, valid until it ends

	Serving *Serving  // the version that answered
	Labels  []string  // its labels
	Best    []int     // per text, the index of its most probable label
	Probs   []float32 // per text, a probability per label, row after row

	strs []string
}

// Row is text i's probabilities, one per label.
func (inf *Inference) Row(i int) []float32 {
	n := len(inf.Labels)
	return inf.Probs[i*n : (i+1)*n]
}

var inferences = sync.Pool{New: func() any { return new(Inference) }}

// newInference returns an empty Inference from the pool; release gives it
// back once its answer is written.
func newInference(c Caller) *Inference {
	inf := inferences.Get().(*Inference)
	inf.Caller = c
	return inf
}

func (inf *Inference) release() {
	clear(inf.Texts) // no text outlives its request
	clear(inf.strs)
	*inf = Inference{Texts: inf.Texts[:0], Best: inf.Best[:0], Probs: inf.Probs[:0], strs: inf.strs[:0]}
	inferences.Put(inf)
}

// Infer answers inf: it picks the version (the one inf names, or the
// split's, uncounted past the caller's share of a rollout's figures),
// predicts every text, records the predictions in that version's figures
// and offers each text to a candidate's shadow.
func (s *Server) Infer(inf *Inference) error {
	sl, sv, err := s.pick(inf)
	if err != nil {
		return err
	}
	inf.Serving, inf.Labels = sv, sv.Predictor.Labels()
	n := len(inf.Labels)
	for _, t := range inf.Texts {
		inf.strs = append(inf.strs, b2s(t))
	}
	inf.Probs = grow(inf.Probs, len(inf.Texts)*n)
	t0 := time.Now()
	err = sv.Predictor.Predict(inf.strs, inf.Probs)
	sv.stats.record(len(inf.strs), time.Since(t0), err != nil)
	if err != nil {
		if errors.Is(err, inference.ErrOverloaded) {
			return httperr.Wrap(fasthttp.StatusServiceUnavailable, "the model is overloaded: retry shortly", err)
		}
		predictErrors.Inc()
		return httperr.Wrap(fasthttp.StatusInternalServerError, "the model could not predict", err)
	}
	for i, t := range inf.Texts {
		row := inf.Row(i)
		best := inference.ArgMax(row)
		inf.Best = append(inf.Best, best)
		sv.observe(best, row[best], len(t))
		sl.offer(sv, t, best)
	}
	return nil
}

// pick is the model inf asks for and the version that answers it: the
// held version it names, else the split's choice. Past the caller's share
// of a rollout's figures it is the version's uncounted twin.
func (s *Server) pick(inf *Inference) (*Slot, *Serving, error) {
	sl := s.slots[0]
	if inf.Model != "" {
		var err error
		if sl, err = s.lookup(inf.Model); err != nil {
			return nil, nil, err
		}
	}
	stable := sl.current.Load()
	if stable == nil {
		return nil, nil, sl.notLoaded()
	}
	sv, err := sl.version(sl.choose(stable, inf.Caller), inf.Version)
	return sl, sv, err
}

// lookup is the slot of the model called name, or a 404 naming the
// models this edge serves.
func (s *Server) lookup(name string) (*Slot, error) {
	if sl := s.byName[name]; sl != nil {
		return sl, nil
	}
	return nil, httperr.New(fasthttp.StatusNotFound, "model %q not found (this edge serves %s)", name, s.modelList())
}

// modelList names the models served, quoted, for messages.
func (s *Server) modelList() string {
	var b []byte
	for i, sl := range s.slots {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, sl.name)
	}
	return string(b)
}

// grow returns b resized to n, reusing its array when it can.
func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
