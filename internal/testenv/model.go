package testenv

import (
	"testing"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/train"
)

// tinyCorpus is a two-class corpus any model learns perfectly.
var tinyCorpus = func() []train.Example {
	pos := []string{"great", "wonderful", "moving", "funny"}
	neg := []string{"awful", "boring", "dull", "tedious"}
	var ex []train.Example
	for i := 0; i < 200; i++ {
		ex = append(ex, train.Example{Text: "a " + pos[i%4] + " film", Label: 1}, train.Example{Text: "a " + neg[i%4] + " film", Label: 0})
	}
	return ex
}()

// TinyArtifact trains a small real model (2^10 buckets, a few KiB) and
// returns its artifact. Different seeds give different artifacts;
// accuracy > 0 is recorded as the artifact's evaluation metric.
func TinyArtifact(t testing.TB, seed uint64, accuracy float64) []byte {
	t.Helper()
	return tinyArtifact(t, tinyCorpus, seed, accuracy)
}

// FlippedArtifact is TinyArtifact trained with every label flipped: a
// broken model that calls "a great film" negative.
func FlippedArtifact(t testing.TB, seed uint64) []byte {
	t.Helper()
	flipped := make([]train.Example, len(tinyCorpus))
	for i, ex := range tinyCorpus {
		flipped[i] = train.Example{Text: ex.Text, Label: 1 - ex.Label}
	}
	return tinyArtifact(t, flipped, seed, 0)
}

func tinyArtifact(t testing.TB, corpus []train.Example, seed uint64, accuracy float64) []byte {
	t.Helper()
	cfg := train.DefaultConfig()
	cfg.Name, cfg.Seed, cfg.Features.HashBits = "test", seed, 10
	m, err := train.Fit(corpus, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accuracy > 0 {
		m = m.WithMetrics(&model.Metrics{Accuracy: accuracy, Examples: 400, DataDigest: model.Digest([]byte("dev"))})
	}
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
