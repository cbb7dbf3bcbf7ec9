package train

import (
	"math"

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

// Evaluate predicts every example and tallies the confusion matrix.
// progress, if set, is called after each example.
func Evaluate(m *model.Model, examples []Example, progress func(done, total int)) Evaluation {
	ev := Evaluation{Labels: [2]string(m.Labels())}
	for i, ex := range examples {
		p := m.Classify(ex.Text)
		ev.Confusion[ex.Label][p.Index]++
		bin := &ev.Calibration[min(int((p.Score-0.5)*2*calibrationBins), calibrationBins-1)]
		bin.Count++
		bin.Confidence += float64(p.Score)
		if p.Index == ex.Label {
			bin.Correct++
		}
		if progress != nil {
			progress(i+1, len(examples))
		}
	}
	return ev
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
