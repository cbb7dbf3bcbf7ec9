// Package train is the built-in model's offline side: reading labelled
// data sets, training, evaluation and the sentiment lexicon. The edge does
// not link it; sentctl and the tests do.
package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sentimentpro/sentiment/model"
)

// Example is one labelled text; Label is 0 or 1.
type Example struct {
	Text  string
	Label int
}

// Config holds the trainer's settings. Zero fields take the defaults
// of DefaultConfig.
type Config struct {
	Name         string
	Labels       [2]string
	Features     model.Features
	Epochs       int
	LearningRate float64 // AdaGrad base step
	L2           float64 // L2 penalty per example step on the weights touched
	Seed         uint64
	DataDigest   string
	// NBAlpha > 0 scales each feature by its naive-Bayes log-count ratio
	// (NBSVM-style, smoothed by NBAlpha); the ratios are folded into the
	// final weights, so prediction cost does not change.
	NBAlpha float64
	// Lexicon, when set, is a sentiment lexicon (word → valence, about
	// -4..4, as VADER's): a word of it that the training data never showed
	// takes the mean weight of the words it did show in the same valence
	// band, plain or negated (backOff), so it still counts. Only weights
	// change, so prediction cost does not. LexiconID names it in the
	// artifact (for reproduction).
	Lexicon   map[string]float64
	LexiconID string
	// MinCount > 1 drops, in training only, the features of fewer
	// training examples than that: their hash slots then carry the
	// weights of the features that recur, not noise.
	MinCount int
	// BalanceClasses weighs each example by the inverse of its label's
	// share, so the model starts from even odds whatever the data's mix.
	BalanceClasses bool
	// DataParts, when the data came from several files, names each (see
	// model.Training.Data).
	DataParts []string
}

// DefaultConfig is what `sentctl train` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Name:         "sentiment",
		Labels:       [2]string{"negative", "positive"},
		Features:     model.Features{HashBits: 20, NGrams: 2, Negation: true, Norm: model.NormNone},
		Epochs:       6,
		LearningRate: 0.08,
		L2:           1e-6,
		Seed:         1,
	}
}

// encoded is an example turned into table indexes once, before the epochs.
type encoded struct {
	idx   []uint32
	scale float64
	y     float64
}

// Train fits a logistic regression with AdaGrad on hashed features and
// returns the average of the end-of-epoch weights. It is
// deterministic: the same examples, config and seed give the same weights
// bit for bit. progress, if set, is called after each example of each epoch.
func Fit(examples []Example, cfg Config, progress func(done, total int)) (*model.Model, error) {
	if len(examples) == 0 {
		return nil, errors.New("cannot train: no examples")
	}
	md := model.Metadata{
		Name:     cfg.Name,
		Labels:   cfg.Labels[:],
		Features: cfg.Features,
		Training: model.Training{
			DataDigest: cfg.DataDigest, Examples: len(examples), Epochs: cfg.Epochs,
			LearningRate: cfg.LearningRate, L2: cfg.L2, Seed: cfg.Seed,
			Data: cfg.DataParts, NBAlpha: cfg.NBAlpha, MinCount: cfg.MinCount, Lexicon: cfg.LexiconID,
			BalanceClasses: cfg.BalanceClasses,
		},
	}
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("cannot train: %w", err)
	}
	if len(cfg.Lexicon) > 0 && cfg.LexiconID == "" {
		return nil, errors.New("cannot train: a lexicon needs a LexiconID, so the artifact says which")
	}
	if cfg.Epochs < 1 || cfg.LearningRate <= 0 || cfg.L2 < 0 || cfg.NBAlpha < 0 || cfg.MinCount < 0 {
		return nil, fmt.Errorf("cannot train: epochs %d, learning rate %g, l2 %g, nb alpha %g, min count %d out of range",
			cfg.Epochs, cfg.LearningRate, cfg.L2, cfg.NBAlpha, cfg.MinCount)
	}
	n := 1 << cfg.Features.HashBits
	data := make([]encoded, len(examples))
	for i, ex := range examples {
		if ex.Label != 0 && ex.Label != 1 {
			return nil, fmt.Errorf("cannot train: example %d has label %d, want 0 or 1", i, ex.Label)
		}
		idx := cfg.Features.AppendIndexes(nil, ex.Text)
		data[i] = encoded{idx: idx, scale: float64(cfg.Features.Scale(len(idx))), y: float64(ex.Label)}
	}

	if cfg.MinCount > 1 {
		pruneRare(data, n, cfg.MinCount)
	}
	r := nbRatios(data, n, cfg.NBAlpha)
	w := make([]float64, n)
	g2 := make([]float64, n) // AdaGrad's accumulated squared gradients
	var bias, biasG2 float64
	const eps = 1e-8
	order := make([]int, len(data))
	for i := range order {
		order[i] = i
	}
	classWeight := [2]float64{1, 1}
	if cfg.BalanceClasses {
		var count [2]float64
		for _, ex := range data {
			count[int(ex.y)]++
		}
		for c := range 2 {
			if count[c] > 0 {
				classWeight[c] = float64(len(data)) / (2 * count[c])
			}
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	total := cfg.Epochs * len(data)
	avg := make([]float64, n)
	var avgBias float64
	navg := 0.0
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for k, i := range order {
			ex := &data[i]
			z := bias
			for _, j := range ex.idx {
				z += w[j] * r[j] * ex.scale
			}
			g := (1/(1+math.Exp(-z)) - ex.y) * classWeight[int(ex.y)] // d(logloss)/dz
			for _, j := range ex.idx {
				gj := g*r[j]*ex.scale + cfg.L2*w[j]
				g2[j] += gj * gj
				w[j] -= cfg.LearningRate * gj / (math.Sqrt(g2[j]) + eps)
			}
			biasG2 += g * g
			bias -= cfg.LearningRate * g / (math.Sqrt(biasG2) + eps)
			if progress != nil {
				progress(epoch*len(data)+k+1, total)
			}
		}
		// Average the end-of-epoch weights from the second epoch on: the
		// average generalises better than the last iterate.
		if epoch >= 1 || cfg.Epochs == 1 {
			for i := range w {
				avg[i] += w[i]
			}
			avgBias += bias
			navg++
		}
	}
	for i := range w {
		w[i] = avg[i] / navg
	}
	bias = avgBias / navg
	weights := make([]float32, n)
	for i, x := range w {
		weights[i] = float32(x * r[i])
	}
	backOff(weights, data, lexiconSlots(cfg.Lexicon, cfg.Features))
	m, err := model.New(md, weights, float32(bias))
	if err != nil {
		return nil, fmt.Errorf("cannot train: %w", err)
	}
	return m, nil
}

// nbRatios returns per-feature scales: all ones without NB weighting, else
// |log((p_j/|p|) / (q_j/|q|))| over binarised per-example presence counts,
// so the model starts from how strongly each feature leans either way.
func nbRatios(data []encoded, n int, alpha float64) []float64 {
	r := make([]float64, n)
	if alpha <= 0 {
		for i := range r {
			r[i] = 1
		}
		return r
	}
	pos, neg := make([]float64, n), make([]float64, n)
	seen := make(map[uint32]bool)
	for _, ex := range data {
		clear(seen)
		for _, j := range ex.idx {
			if seen[j] {
				continue
			}
			seen[j] = true
			if ex.y == 1 {
				pos[j]++
			} else {
				neg[j]++
			}
		}
	}
	var sp, sn float64
	for i := range n {
		pos[i] += alpha
		neg[i] += alpha
		sp += pos[i]
		sn += neg[i]
	}
	for i := range n {
		r[i] = math.Abs(math.Log((pos[i] / sp) / (neg[i] / sn)))
	}
	return r
}

// pruneRare removes from every example the table slots fewer than min
// examples use.
func pruneRare(data []encoded, n, min int) {
	count := make([]int32, n)
	last := make([]int32, n)
	for i := range last {
		last[i] = -1
	}
	for e, ex := range data {
		for _, j := range ex.idx {
			if last[j] != int32(e) {
				last[j] = int32(e)
				count[j]++
			}
		}
	}
	for e := range data {
		kept := data[e].idx[:0]
		for _, j := range data[e].idx {
			if count[j] >= int32(min) {
				kept = append(kept, j)
			}
		}
		data[e].idx = kept
	}
}
