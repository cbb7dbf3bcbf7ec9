package model_test

import (
	"os"
	"testing"

	"github.com/jonreiter/govader"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
)

// The benchmarks read the shared data sets beside the repository:
//
//	go test -run XXX -bench . -benchmem ./model
//
// Predict runs over every SST-2 dev sentence (short, ~104 bytes) or IMDB
// review cut to ~2 KB (long), cycling, so branch predictors and caches
// see varied text. GoVader, a lexicon model a Go user might pick instead,
// runs on the same texts in the same run; each reports its accuracy on the
// same labelled texts as a custom metric.
const (
	sstTrain = "../../shared/data/sst2/train.tsv"
	sstDev   = "../../shared/data/sst2/dev.tsv"
	imdb     = "../../shared/data/imdb/train.tsv.gz"
)

var labels = model.DataOptions{Labels: [2]string{"negative", "positive"}}

func readOrSkip(b *testing.B, path string) []model.Example {
	b.Helper()
	if _, err := os.Stat(path); err != nil {
		b.Skipf("shared data missing: %v", err)
	}
	ds, err := model.ReadDataset(path, labels)
	if err != nil {
		b.Fatal(err)
	}
	return ds.Examples
}

// longTexts takes every 10th IMDB review of 2 KB or more, cut to 2 KB.
func longTexts(b *testing.B) []model.Example {
	all := readOrSkip(b, imdb)
	var out []model.Example
	for i := 0; i < len(all); i += 10 {
		if t := all[i].Text; len(t) >= 2048 {
			out = append(out, model.Example{Text: t[:2048], Label: all[i].Label})
		}
	}
	return out
}

func meanLen(ex []model.Example) int {
	n := 0
	for _, e := range ex {
		n += len(e.Text)
	}
	return n / len(ex)
}

func BenchmarkPredict(b *testing.B) {
	m, err := defaultmodel.Load()
	if err != nil {
		b.Fatal(err)
	}
	// IMDB_MODEL (e.g. bin/imdb.sapm from `make model-imdb`) times the
	// long-review model instead; it was trained on most of these reviews,
	// so its accuracy here is not reported.
	imdbModel, reportLong := m, true
	if path := os.Getenv("IMDB_MODEL"); path != "" {
		if imdbModel, err = model.LoadFile(path); err != nil {
			b.Fatal(err)
		}
		reportLong = false
	}
	for _, tc := range []struct {
		name      string
		m         *model.Model
		data      func(*testing.B) []model.Example
		reportAcc bool
	}{
		{"short", m, func(b *testing.B) []model.Example { return readOrSkip(b, sstDev) }, true},
		{"long", imdbModel, longTexts, reportLong},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ex := tc.data(b)
			acc := model.Evaluate(tc.m, ex, nil).Accuracy()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tc.m.Predict(ex[i%len(ex)].Text)
			}
			// Reported after the loop: ResetTimer clears custom metrics.
			b.ReportMetric(float64(meanLen(ex)), "bytes/text")
			if tc.reportAcc {
				b.ReportMetric(acc, "accuracy")
			}
		})
	}
}

func BenchmarkPredictParallel(b *testing.B) {
	m, _ := defaultmodel.Load()
	ex := readOrSkip(b, sstDev)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Predict(ex[i%len(ex)].Text)
			i++
		}
	})
}

func BenchmarkGoVader(b *testing.B) {
	a := govader.NewSentimentIntensityAnalyzer()
	for _, tc := range []struct {
		name string
		data func(*testing.B) []model.Example
	}{
		{"short", func(b *testing.B) []model.Example { return readOrSkip(b, sstDev) }},
		{"long", longTexts},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ex := tc.data(b)
			correct := 0
			for _, e := range ex {
				positive := a.PolarityScores(e.Text).Compound >= 0
				if positive == (e.Label == 1) {
					correct++
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.PolarityScores(ex[i%len(ex)].Text)
			}
			b.ReportMetric(float64(meanLen(ex)), "bytes/text")
			b.ReportMetric(float64(correct)/float64(len(ex)), "accuracy")
		})
	}
}

func BenchmarkTrainSST2(b *testing.B) {
	ex := readOrSkip(b, sstTrain)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := model.Train(ex, model.DefaultTrainConfig(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	data := defaultmodel.Artifact()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := model.Load(data); err != nil {
			b.Fatal(err)
		}
	}
}
