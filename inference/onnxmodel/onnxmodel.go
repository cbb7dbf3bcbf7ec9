// Package onnxmodel serves an ONNX model bundle (model/bundle) as an
// inference.Predictor: its tokenizer turns texts into ids, ONNX Runtime
// (inference/onnxrt) runs the graph, and a softmax of the logits gives
// one probability per label.
//
// Requests are batched as Triton's dynamic batcher does, in process: a
// request's texts wait in a bounded queue; one runner takes as many as
// fit in the largest batch, waiting at most the queue delay for more
// (and not at all once a preferred batch size is reached), pads them to
// the longest and runs them together. A full queue, or a text that waited
// past its deadline, is inference.ErrOverloaded, never unbounded memory.
package onnxmodel

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/inference/tokenizer"
	"github.com/sentimentpro/sentiment/model/bundle"
)

// Platform is the Open Inference Protocol's name for ONNX Runtime models,
// as Triton and KServe report it.
const Platform = "onnxruntime_onnx"

// Config tunes serving. The zero value is usable: see the defaults.
type Config struct {
	// IntraOpThreads is the threads one run may use (default: one per
	// core).
	IntraOpThreads int
	// NoSpin makes those threads sleep between runs rather than spin
	// (ONNX Runtime's default, kept here: it took 1.5x the texts a second
	// of sleeping threads in batches on 2 cores). Sleeping gives the cores
	// back to the rest of the process when load is light.
	NoSpin bool
	// MaxBatch is the most texts run together (default 32).
	MaxBatch int
	// PreferredBatch are batch sizes the runner does not wait past
	// (Triton's preferred_batch_size).
	PreferredBatch []int
	// MaxQueueDelay is how long the runner waits for more texts once it
	// has some (default 0: it takes what is queued and runs). Texts that
	// arrive while a batch runs queue up for the next anyway.
	MaxQueueDelay time.Duration
	// MaxQueue is the most requests waiting (default 1024); past it,
	// Predict is inference.ErrOverloaded at once.
	MaxQueue int
	// QueueTimeout is the longest a request waits for the runner (default
	// 2s); past it, inference.ErrOverloaded.
	QueueTimeout time.Duration
}

func (c *Config) defaults() {
	if c.IntraOpThreads <= 0 {
		c.IntraOpThreads = runtime.NumCPU()
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 32
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 1024
	}
	if c.QueueTimeout <= 0 {
		c.QueueTimeout = 2 * time.Second
	}
}

// Model is a loaded bundle being served. It is safe for concurrent use.
type Model struct {
	cfg     Config
	info    bundle.Info
	tok     *tokenizer.Tokenizer
	session *onnxrt.Session
	digest  string
	inputs  []string // the session's inputs, in its order
	logits  int      // index of logits among the session's outputs

	queue   chan *request
	mu      sync.RWMutex // Predict's sends hold it read; Close takes it to close the queue
	closed  bool
	stopped chan struct{} // closed when the runner has served the queue and left
	stats   Stats
	statsMu sync.Mutex
}

// Stats counts what the batcher did.
type Stats struct {
	Batches  int64 // runs
	Texts    int64 // texts run
	Rejected int64 // requests refused: queue full or past their deadline
}

// request is one Predict call's share of a batch: at most MaxBatch texts.
type request struct {
	encs     []tokenizer.Encoding
	probs    []float32 // len(encs) rows of one probability per label
	deadline time.Time
	done     chan error
}

// Load opens a session for a bundle already checked by bundle.Open and
// starts its runner. digest names the bundle's bytes ("sha256:<hex>").
func Load(rt *onnxrt.Runtime, b *bundle.Bundle, digest string, cfg Config) (*Model, error) {
	cfg.defaults()
	s, err := rt.NewSession(b.Model, onnxrt.SessionOptions{IntraOpThreads: cfg.IntraOpThreads, Spin: !cfg.NoSpin})
	if err != nil {
		return nil, fmt.Errorf("cannot load ONNX model: %w", err)
	}
	m := &Model{cfg: cfg, info: b.Info, tok: b.Tokenizer, session: s, digest: digest,
		queue: make(chan *request, cfg.MaxQueue), stopped: make(chan struct{})}
	if err := m.bindTensors(); err != nil {
		s.Close()
		return nil, err
	}
	go m.run()
	return m, nil
}

// bindTensors checks the session against the bundle's description: the
// graph ONNX Runtime loaded is the one the registry checked.
func (m *Model) bindTensors() error {
	for _, in := range m.session.Inputs {
		switch in.Name {
		case bundle.InputIDs, bundle.AttentionMask, bundle.TokenTypeIDs:
			m.inputs = append(m.inputs, in.Name)
		default:
			return fmt.Errorf("cannot serve ONNX model: input %q is not one this server feeds", in.Name)
		}
	}
	m.logits = slices.IndexFunc(m.session.Outputs, func(t onnxrt.Tensor) bool { return t.Name == bundle.OutputLogits })
	if m.logits < 0 || !slices.Contains(m.inputs, bundle.InputIDs) {
		return errors.New("cannot serve ONNX model: it has no input_ids input or no logits output")
	}
	return nil
}

// Labels names the classes, config.json's id2label in id order.
func (m *Model) Labels() []string { return m.info.Labels }

// Digest is the bundle's "sha256:<hex>".
func (m *Model) Digest() string { return m.digest }

// Platform is "onnxruntime_onnx".
func (m *Model) Platform() string { return Platform }

// Info is the bundle's description.
func (m *Model) Info() bundle.Info { return m.info }

// Stats is what the batcher has done so far.
func (m *Model) Stats() Stats {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	return m.stats
}

// QueueLength is how many requests wait for the runner.
func (m *Model) QueueLength() int { return len(m.queue) }

// Predict tokenizes texts and waits for the runner to score them, in
// batches of at most MaxBatch.
func (m *Model) Predict(texts []string, probs []float32) error {
	labels := len(m.info.Labels)
	if len(probs) != len(texts)*labels {
		return fmt.Errorf("probs has %d values for %d texts of %d labels", len(probs), len(texts), labels)
	}
	deadline := time.Now().Add(m.cfg.QueueTimeout)
	var reqs []*request
	for start := 0; start < len(texts); start += m.cfg.MaxBatch {
		end := min(start+m.cfg.MaxBatch, len(texts))
		r := &request{probs: probs[start*labels : end*labels], deadline: deadline, done: make(chan error, 1)}
		for _, t := range texts[start:end] {
			r.encs = append(r.encs, m.tok.Encode(t))
		}
		if err := m.enqueue(r); err != nil {
			return wait(reqs, err)
		}
		reqs = append(reqs, r)
	}
	return wait(reqs, nil)
}

// enqueue queues r for the runner, unless the queue is full or closed.
func (m *Model) enqueue(r *request) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errors.New("the ONNX model is closed")
	}
	select {
	case m.queue <- r:
		return nil
	default:
		m.count(func(s *Stats) { s.Rejected++ })
		return inference.ErrOverloaded
	}
}

// wait waits for every request and returns the first error: err, if
// not nil, else the requests'.
func wait(reqs []*request, err error) error {
	for _, r := range reqs {
		if rerr := <-r.done; err == nil {
			err = rerr
		}
	}
	return err
}

func (m *Model) count(f func(*Stats)) {
	m.statsMu.Lock()
	f(&m.stats)
	m.statsMu.Unlock()
}

// run is the runner: it forms batches from the queue and runs them,
// until Close has closed the queue and it is empty.
func (m *Model) run() {
	defer close(m.stopped)
	var carry *request
	for {
		first := carry
		if first == nil {
			var ok bool
			if first, ok = <-m.queue; !ok {
				return
			}
		}
		var batch []*request
		batch, carry = m.collect(first)
		m.runBatch(batch)
	}
}

// collect adds queued requests to first up to MaxBatch texts, waiting up
// to MaxQueueDelay for more unless a preferred size is reached. A request
// that does not fit is returned for the next batch.
func (m *Model) collect(first *request) (batch []*request, carry *request) {
	batch = []*request{first}
	n := len(first.encs)
	var timeout <-chan time.Time
	if m.cfg.MaxQueueDelay > 0 {
		t := time.NewTimer(m.cfg.MaxQueueDelay)
		defer t.Stop()
		timeout = t.C
	}
	for n < m.cfg.MaxBatch && !slices.Contains(m.cfg.PreferredBatch, n) {
		var r *request
		var ok bool
		select {
		case r, ok = <-m.queue:
		default:
			if timeout == nil {
				return batch, nil
			}
			select {
			case r, ok = <-m.queue:
			case <-timeout:
				return batch, nil
			}
		}
		if !ok {
			return batch, nil
		}
		if n+len(r.encs) > m.cfg.MaxBatch {
			return batch, r
		}
		batch = append(batch, r)
		n += len(r.encs)
	}
	return batch, nil
}

// runBatch runs the live requests of batch and hands each its
// probabilities. The batch's texts are sorted by length and run in the
// groups plan chooses, so short texts are not padded to a long one's
// length.
func (m *Model) runBatch(batch []*request) {
	now := time.Now()
	live := batch[:0]
	for _, r := range batch {
		if now.After(r.deadline) {
			m.count(func(s *Stats) { s.Rejected++ })
			r.done <- inference.ErrOverloaded
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	type text struct {
		enc tokenizer.Encoding
		dst []float32 // its row of its request's probabilities
	}
	labels := len(m.info.Labels)
	var texts []text
	for _, r := range live {
		for i, e := range r.encs {
			texts = append(texts, text{enc: e, dst: r.probs[i*labels : (i+1)*labels]})
		}
	}
	slices.SortStableFunc(texts, func(a, b text) int { return len(a.enc.IDs) - len(b.enc.IDs) })
	lengths := make([]int, len(texts))
	for i, t := range texts {
		lengths[i] = len(t.enc.IDs)
	}
	var err error
	for _, g := range plan(lengths, runCost) {
		encs := make([]tokenizer.Encoding, 0, g[1]-g[0])
		for _, t := range texts[g[0]:g[1]] {
			encs = append(encs, t.enc)
		}
		probs, rerr := m.infer(encs)
		if rerr != nil {
			err = rerr
			break
		}
		for i, t := range texts[g[0]:g[1]] {
			copy(t.dst, probs[i*labels:(i+1)*labels])
		}
		m.count(func(s *Stats) { s.Batches++; s.Texts += int64(len(encs)) })
	}
	for _, r := range live {
		r.done <- err
	}
}

// runCost is what one run costs beyond its tokens, in tokens: measured on
// the example model, a run of one 25-token text took as long as about 60
// tokens in a large batch.
const runCost = 64

// plan splits texts sorted by length into groups run together, [start,
// end) each, minimising the tokens run, padding included, plus overhead
// per run: a group is padded to its longest text.
func plan(lengths []int, overhead int) [][2]int {
	n := len(lengths)
	best := make([]int, n+1) // best[i]: least cost of the first i texts
	cut := make([]int, n+1)
	for i := 1; i <= n; i++ {
		best[i] = -1
		for j := 0; j < i; j++ {
			c := best[j] + overhead + (i-j)*lengths[i-1]
			if best[i] < 0 || c < best[i] {
				best[i], cut[i] = c, j
			}
		}
	}
	var groups [][2]int
	for i := n; i > 0; i = cut[i] {
		groups = append(groups, [2]int{cut[i], i})
	}
	slices.Reverse(groups)
	return groups
}

// infer runs encodings padded to the longest and returns the softmax of
// the logits, row after row.
func (m *Model) infer(encs []tokenizer.Encoding) ([]float32, error) {
	width := 1
	for _, e := range encs {
		width = max(width, len(e.IDs))
	}
	shape := []int64{int64(len(encs)), int64(width)}
	inputs := make([]onnxrt.Int64Input, len(m.inputs))
	for i, name := range m.inputs {
		values := make([]int64, len(encs)*width)
		for row, e := range encs {
			dst := values[row*width : (row+1)*width]
			switch name {
			case bundle.InputIDs:
				copy(dst, e.IDs)
				for j := len(e.IDs); j < width; j++ {
					dst[j] = m.info.PadID
				}
			case bundle.AttentionMask:
				for j := range e.IDs {
					dst[j] = 1
				}
			case bundle.TokenTypeIDs:
				copy(dst, e.TypeIDs)
			}
		}
		inputs[i] = onnxrt.Int64Input{Values: values, Shape: shape}
	}
	outs, err := m.session.Run(inputs)
	if err != nil {
		return nil, fmt.Errorf("cannot run ONNX model: %w", err)
	}
	out := outs[m.logits]
	labels := len(m.info.Labels)
	if len(out.Shape) != 2 || out.Shape[0] != int64(len(encs)) || out.Shape[1] != int64(labels) {
		return nil, fmt.Errorf("logits have shape %v, want [%d %d]", out.Shape, len(encs), labels)
	}
	for row := range encs {
		softmax(out.Values[row*labels : (row+1)*labels])
	}
	return out.Values, nil
}

// softmax turns logits into probabilities in place.
func softmax(v []float32) {
	hi := float32(math.Inf(-1))
	for _, x := range v {
		hi = max(hi, x)
	}
	var sum float64
	for i, x := range v {
		e := math.Exp(float64(x - hi))
		v[i] = float32(e)
		sum += e
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / sum)
	}
}

// WarmUp runs one batch of MaxBatch texts at the longest sequence the
// model takes, made of the largest id the tokenizer gives: a model that
// cannot run what it may be sent fails here, before it serves.
func (m *Model) WarmUp() error {
	id := int64(m.tok.VocabSize() - 1)
	enc := tokenizer.Encoding{IDs: make([]int64, m.info.MaxLength), TypeIDs: make([]int64, m.info.MaxLength)}
	for i := range enc.IDs {
		enc.IDs[i] = id
	}
	encs := make([]tokenizer.Encoding, m.cfg.MaxBatch)
	for i := range encs {
		encs[i] = enc
	}
	probs, err := m.infer(encs)
	if err != nil {
		return fmt.Errorf("warm-up at %d tokens failed: %w", m.info.MaxLength, err)
	}
	for _, p := range probs {
		if math.IsNaN(float64(p)) {
			return fmt.Errorf("warm-up at %d tokens gave NaN probabilities", m.info.MaxLength)
		}
	}
	return nil
}

// Close serves what is queued, refuses new requests and releases the
// session once runs in flight end: its memory goes back to the system.
func (m *Model) Close() {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.stopped
	m.session.Close()
}

var _ inference.Predictor = (*Model)(nil)
