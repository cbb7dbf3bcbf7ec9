// Package inference is the seam between a model format and the serving
// edge: a Predictor is a loaded model of any format (the built-in
// hashed-bigram model today; ONNX next) that scores a batch of texts with
// one probability per label. The edge serves any Predictor the same way:
// the candidate split, the figures a rollout is judged on, the shadow and
// every protocol's answers are written once, against this interface.
package inference

import "errors"

// ErrOverloaded is returned by a Predictor that queues work (an ONNX
// model's batcher) when its queue is full or a text waited past its
// deadline: the caller should answer 503 with Retry-After, and try again.
var ErrOverloaded = errors.New("the model is overloaded")

// Predictor is a model loaded for serving. It is immutable and safe for
// concurrent use.
type Predictor interface {
	// Labels names the classes, in the order of each text's
	// probabilities. The slice is the predictor's own: do not change it.
	Labels() []string
	// Predict writes, for each text, one probability per label into
	// probs, row after row: len(probs) is len(texts)*len(Labels()). It
	// keeps no text.
	Predict(texts []string, probs []float32) error
	// Digest is "sha256:<hex>" of the artifact it was loaded from.
	Digest() string
	// Platform names the format in protocol metadata (the Open Inference
	// Protocol's "platform"), e.g. "sentiment-linear".
	Platform() string
}

// Explainer is a Predictor that can tell which features of a text moved
// its prediction.
type Explainer interface {
	// Explain returns the k features of text that moved its score most,
	// largest magnitude first.
	Explain(text string, k int) []Contribution
}

// Contribution is one feature's share of a prediction's score: positive
// values push towards the last label (e.g. "positive").
type Contribution struct {
	Feature string  `json:"feature"` // e.g. "good", "not good", "NOT_funny", "!"
	Weight  float32 `json:"weight"`
}

// ArgMax is the index of the largest probability in row (the first of
// equals), or -1 for an empty row.
func ArgMax(row []float32) int {
	best := -1
	for i, p := range row {
		if best < 0 || p > row[best] {
			best = i
		}
	}
	return best
}
