// Package model is the sentiment model: a tokenizer that copes with real
// text, hashed unigram/bigram features with negation marking, a logistic
// regression (trained by model/train), the versioned artifact format with its SHA-256
// and ed25519 signature, and a runtime whose Predict allocates nothing and
// is safe for concurrent use.
package model

import (
	"fmt"
	"math"
	"sort"

	"github.com/sentimentpro/sentiment/inference"
)

// Platform is the built-in format's name in protocol metadata.
const Platform = "sentiment-linear"

// The built-in model is a Predictor the edge serves like any other.
var (
	_ inference.Predictor = (*Model)(nil)
	_ inference.Explainer = (*Model)(nil)
)

// Model is a loaded, validated model. It is immutable and safe for
// concurrent use.
type Model struct {
	meta     Metadata
	features Features
	weights  []float32 // 2^HashBits entries
	bias     float32
	digest   string   // "sha256:<hex>" of the artifact bytes it was loaded from
	labels   []string // meta.Labels, the Predictor's label order
}

// Prediction is the model's answer for one text.
type Prediction struct {
	Label string  // the winning label's name
	Index int     // 0 or 1
	Score float32 // probability of Label, in [0.5, 1]
	// Positive is the probability of label 1 (e.g. "positive").
	Positive float32
}

// New returns a model of the given metadata, weight table (2^HashBits
// entries, copied) and bias, as a trainer builds it. Its digest is empty
// until it is encoded and loaded.
func New(md Metadata, weights []float32, bias float32) (*Model, error) {
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("cannot build model: %w", err)
	}
	if want := 1 << md.Features.HashBits; len(weights) != want {
		return nil, fmt.Errorf("cannot build model: %d weights, hash_bits %d needs %d", len(weights), md.Features.HashBits, want)
	}
	for i, x := range weights {
		if !finite(x) {
			return nil, fmt.Errorf("cannot build model: %w: weight %d is %v", ErrBadWeights, i, x)
		}
	}
	if !finite(bias) {
		return nil, fmt.Errorf("cannot build model: %w: bias is %v", ErrBadWeights, bias)
	}
	table := newWeights(len(weights))
	copy(table, weights)
	return &Model{meta: md, features: md.Features, weights: table, bias: bias, labels: []string{md.Labels[0], md.Labels[1]}}, nil
}

// Meta returns the model's metadata (labels, training, metrics).
func (m *Model) Meta() Metadata { return m.meta }

// Digest returns "sha256:<hex>" of the artifact the model was loaded from.
func (m *Model) Digest() string { return m.digest }

// Labels returns the two label names, index 0 first (the Predictor's
// order). The slice is the model's own.
func (m *Model) Labels() []string { return m.labels }

// Platform names the format: "sentiment-linear".
func (m *Model) Platform() string { return Platform }

// WithMetrics returns a copy of m whose metadata records metrics. The copy
// shares the weights; its digest is empty until it is encoded and loaded.
func (m *Model) WithMetrics(metrics *Metrics) *Model {
	c := *m
	c.meta.Metrics = metrics
	c.digest = ""
	return &c
}

// WithDescription returns a copy of m whose metadata records a description
// and the held-out share used for its metrics.
func (m *Model) WithDescription(desc string, holdout float64) *Model {
	c := *m
	c.meta.Description = desc
	c.meta.Training.Holdout = holdout
	c.digest = ""
	return &c
}

// logit returns the raw score (log-odds of label 1) of text.
func (m *Model) logit(text string) float32 {
	it := m.features.iter(text)
	it.weights = m.weights
	var sum float32
	n := 0
	// Gather indexes first (prefetching their weights), then sum: the
	// table loads of a batch overlap instead of each waiting behind the
	// tokenizer's branches.
	var batch [64]uint32
	for {
		k := it.fill(batch[:], nil)
		if k == 0 {
			break
		}
		for _, j := range batch[:k] {
			sum += m.weights[j]
		}
		n += k
	}
	return m.bias + sum*m.features.Scale(n)
}

// Predict writes each text's two probabilities, label 0's then label 1's,
// into probs (inference.Predictor). It allocates nothing and keeps no
// text.
func (m *Model) Predict(texts []string, probs []float32) error {
	if len(probs) != 2*len(texts) {
		return fmt.Errorf("cannot predict %d texts into %d probabilities: want %d", len(texts), len(probs), 2*len(texts))
	}
	for i, text := range texts {
		p := sigmoid(m.logit(text))
		probs[2*i], probs[2*i+1] = 1-p, p
	}
	return nil
}

// Classify classifies one text. It allocates nothing and does not retain
// text.
func (m *Model) Classify(text string) Prediction {
	p := sigmoid(m.logit(text))
	if p >= 0.5 {
		return Prediction{Label: m.meta.Labels[1], Index: 1, Score: p, Positive: p}
	}
	return Prediction{Label: m.meta.Labels[0], Index: 0, Score: 1 - p, Positive: p}
}

func sigmoid(z float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(z))))
}

// Explain returns the k features of text that moved its score most, largest
// magnitude first. A feature seen several times is reported once with its
// summed contribution.
func (m *Model) Explain(text string, k int) []inference.Contribution {
	if k <= 0 {
		return nil
	}
	type key struct {
		index uint32
		name  string
	}
	var idx []uint32
	var spans []span
	it := m.features.iter(text)
	var ib [64]uint32
	var sb [64]span
	for {
		k := it.fill(ib[:], sb[:])
		if k == 0 {
			break
		}
		idx, spans = append(idx, ib[:k]...), append(spans, sb[:k]...)
	}
	scale := m.features.Scale(len(idx))
	sums := map[key]float32{}
	var order []key
	for i, j := range idx {
		k := key{j, featureName(text, spans[i])}
		if _, seen := sums[k]; !seen {
			order = append(order, k)
		}
		sums[k] += m.weights[j] * scale
	}
	out := make([]inference.Contribution, 0, len(order))
	for _, k := range order {
		out = append(out, inference.Contribution{Feature: k.name, Weight: sums[k]})
	}
	sort.SliceStable(out, func(i, j int) bool { return abs32(out[i].Weight) > abs32(out[j].Weight) })
	if len(out) > k {
		out = out[:k]
	}
	return out
}

func featureName(text string, f span) string {
	name := lowerSpan(text[f.start:f.end])
	if f.negated {
		return "NOT_" + name
	}
	return name
}

// lowerSpan lowercases a span and folds runs of white space into one space,
// so a bigram across a line break reads "not good".
func lowerSpan(s string) string {
	out := make([]rune, 0, len(s))
	space := false
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, toLower(r))
	}
	return string(out)
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
