package model_test

import (
	"os"
	"testing"

	"github.com/jonreiter/govader"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/model/train"
)

// The benchmarks read the shared data sets beside the repository:
//
//	go test -run XXX -bench . -benchmem ./model
//
// Predict runs over every SST-2 dev sentence (short, ~104 bytes) or
// held-out IMDB review cut to 2 KB (long), cycling, so branch predictors
// and caches see varied text. GoVader, a lexicon model a Go user might pick instead,
// runs on the same texts in the same run; each reports its accuracy on the
// same labelled texts as a custom metric.
const (
	sstTrain = "../../shared/data/sst2/train.tsv"
	sstDev   = "../../shared/data/sst2/dev.tsv"
	imdb     = "../../shared/data/imdb/train.tsv.gz"
)

var labels = train.DataOptions{Labels: [2]string{"negative", "positive"}}

func readOrSkip(b *testing.B, path string) []train.Example {
	b.Helper()
	if _, err := os.Stat(path); err != nil {
		b.Skipf("shared data missing: %v", err)
	}
	ds, err := train.ReadDataset(path, labels)
	if err != nil {
		b.Fatal(err)
	}
	return ds.Examples
}

// longTexts are the IMDB reviews `make model` holds out (the default
// model never trained on them) of 2 KB or more, cut to 2 KB.
func longTexts(b *testing.B) []train.Example {
	_, held := train.HoldOut(readOrSkip(b, imdb), 0.2)
	var out []train.Example
	for _, e := range held {
		if len(e.Text) >= 2048 {
			out = append(out, train.Example{Text: e.Text[:2048], Label: e.Label})
		}
	}
	return out
}

func meanLen(ex []train.Example) int {
	n := 0
	for _, e := range ex {
		n += len(e.Text)
	}
	return n / len(ex)
}

// BenchmarkPredict times the default model, and with MODEL=path another
// artifact in the same run (say the previous default, from git show), on
// short and long texts.
func BenchmarkPredict(b *testing.B) {
	models := []struct {
		name string
		m    *model.Model
	}{{"default", nil}}
	var err error
	if models[0].m, err = defaultmodel.Load(); err != nil {
		b.Fatal(err)
	}
	if path := os.Getenv("MODEL"); path != "" {
		other, err := model.LoadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		models = append(models, struct {
			name string
			m    *model.Model
		}{"MODEL", other})
	}
	for _, tc := range []struct {
		name string
		data func(*testing.B) []train.Example
	}{
		{"short", func(b *testing.B) []train.Example { return readOrSkip(b, sstDev) }},
		{"long", longTexts},
	} {
		for _, mc := range models {
			b.Run(tc.name+"/"+mc.name, func(b *testing.B) {
				ex := tc.data(b)
				ev, err := train.Evaluate(mc.m, ex, nil)
				if err != nil {
					b.Fatal(err)
				}
				acc := ev.Accuracy()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					mc.m.Classify(ex[i%len(ex)].Text)
				}
				// Reported after the loop: ResetTimer clears custom metrics.
				b.ReportMetric(float64(meanLen(ex)), "bytes/text")
				b.ReportMetric(acc, "accuracy")
			})
		}
	}
}

// BenchmarkPredictDiverse predicts 100-byte pieces of IMDB reviews, taken
// 7919 pieces apart: far more distinct features than the caches hold, as
// in a server, where the network stack evicts the weights between
// requests. The short SST-2 sentences of BenchmarkPredict repeat, and
// their weights stay cached; the gap between the two is the weight
// table's memory latency.
func BenchmarkPredictDiverse(b *testing.B) {
	m, err := defaultmodel.Load()
	if err != nil {
		b.Fatal(err)
	}
	var pieces []string
	for _, e := range readOrSkip(b, imdb) {
		for t := e.Text; len(t) >= 100; t = t[100:] {
			pieces = append(pieces, t[:100])
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Classify(pieces[(i*7919)%len(pieces)])
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
			m.Classify(ex[i%len(ex)].Text)
			i++
		}
	})
}

func BenchmarkGoVader(b *testing.B) {
	a := govader.NewSentimentIntensityAnalyzer()
	for _, tc := range []struct {
		name string
		data func(*testing.B) []train.Example
	}{
		{"short", func(b *testing.B) []train.Example { return readOrSkip(b, sstDev) }},
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
		if _, err := train.Fit(ex, train.DefaultConfig(), nil); err != nil {
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
