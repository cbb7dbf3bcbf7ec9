package train

import (
	"fmt"
	"math"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/model"
)

// Evaluation is a model's confusion matrix and the figures derived from it
// on a labelled set.
type Evaluation struct {
	Labels    [2]string
	Confusion [2][2]int // [true label][predicted label]
	// Calibration tallies, per tenth of confidence from 0.5 to 1, how many
	// predictions fell there, their summed confidence and how many were
	// right.
	Calibration [calibrationBins]struct {
		Count, Correct int
		Confidence     float64
	}
}

const calibrationBins = 10

// Evaluate predicts every example, in batches, and tallies the confusion
// matrix. p has two labels. progress, if set, is called after each batch.
func Evaluate(p inference.Predictor, examples []Example, progress func(done, total int)) (Evaluation, error) {
	if n := len(p.Labels()); n != 2 {
		return Evaluation{}, fmt.Errorf("cannot evaluate a model of %d labels on two-label data", n)
	}
	ev := Evaluation{Labels: [2]string(p.Labels())}
	const batch = 64
	texts := make([]string, 0, batch)
	probs := make([]float32, 2*batch)
	for start := 0; start < len(examples); start += batch {
		chunk := examples[start:min(start+batch, len(examples))]
		texts = texts[:0]
		for _, ex := range chunk {
			texts = append(texts, ex.Text)
		}
		if err := p.Predict(texts, probs[:2*len(chunk)]); err != nil {
			return Evaluation{}, fmt.Errorf("cannot evaluate: %w", err)
		}
		for i, ex := range chunk {
			ev.add(ex.Label, probs[2*i:2*i+2])
		}
		if progress != nil {
			progress(start+len(chunk), len(examples))
		}
	}
	return ev, nil
}

// add tallies one prediction of a text whose true label is label.
func (e *Evaluation) add(label int, row []float32) {
	best := inference.ArgMax(row)
	score := row[best]
	e.Confusion[label][best]++
	bin := &e.Calibration[max(0, min(int((score-0.5)*2*calibrationBins), calibrationBins-1))]
	bin.Count++
	bin.Confidence += float64(score)
	if best == label {
		bin.Correct++
	}
}

// Total is the number of examples evaluated.
func (e Evaluation) Total() int {
	return e.Confusion[0][0] + e.Confusion[0][1] + e.Confusion[1][0] + e.Confusion[1][1]
}

// Accuracy is the share of correct predictions.
func (e Evaluation) Accuracy() float64 {
	if e.Total() == 0 {
		return 0
	}
	return float64(e.Confusion[0][0]+e.Confusion[1][1]) / float64(e.Total())
}

// ECE is the expected calibration error: over ten bins of confidence,
// the gap between the mean confidence and the accuracy, weighted by the
// bin's share of the predictions. 0 is perfect calibration.
func (e Evaluation) ECE() float64 {
	if e.Total() == 0 {
		return 0
	}
	var gap float64
	for _, b := range e.Calibration {
		gap += math.Abs(float64(b.Correct) - b.Confidence)
	}
	return gap / float64(e.Total())
}

// Class returns precision, recall and F1 of label c.
func (e Evaluation) Class(c int) model.ClassMetrics {
	tp := e.Confusion[c][c]
	predicted := e.Confusion[0][c] + e.Confusion[1][c]
	support := e.Confusion[c][0] + e.Confusion[c][1]
	cm := model.ClassMetrics{Label: e.Labels[c], Support: support}
	if predicted > 0 {
		cm.Precision = float64(tp) / float64(predicted)
	}
	if support > 0 {
		cm.Recall = float64(tp) / float64(support)
	}
	if cm.Precision+cm.Recall > 0 {
		cm.F1 = 2 * cm.Precision * cm.Recall / (cm.Precision + cm.Recall)
	}
	return cm
}

// Metrics summarises the evaluation for an artifact's metadata; accuracy
// and per-class figures are rounded to 4 decimals, as printed.
func (e Evaluation) Metrics(dataDigest string) *model.Metrics {
	m := &model.Metrics{DataDigest: dataDigest, Examples: e.Total(), Accuracy: round4(e.Accuracy()), ECE: round4(e.ECE())}
	for c := range 2 {
		cm := e.Class(c)
		cm.Precision, cm.Recall, cm.F1 = round4(cm.Precision), round4(cm.Recall), round4(cm.F1)
		m.Classes = append(m.Classes, cm)
	}
	return m
}

func round4(x float64) float64 {
	return float64(int64(x*10000+0.5)) / 10000
}
