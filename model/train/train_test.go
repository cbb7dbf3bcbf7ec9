package train

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/model"
)

var (
	posWords = []string{"great", "wonderful", "superb", "moving", "funny", "brilliant", "charming", "delightful"}
	negWords = []string{"awful", "boring", "dull", "terrible", "bland", "tedious", "mess", "waste"}
	fillers  = []string{"the", "movie", "film", "plot", "acting", "was", "is", "a", "and", "story"}
)

// synthetic makes a labelled corpus with a known signal, including negated
// examples ("not great" is negative).
func synthetic(n int, seed uint64) []Example {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Example, n)
	for i := range out {
		label := rng.IntN(2)
		words := []string{fillers[rng.IntN(len(fillers))], fillers[rng.IntN(len(fillers))]}
		negate := rng.IntN(4) == 0
		lex := posWords
		if (label == 1) == negate {
			lex = negWords
		}
		if negate {
			words = append(words, "not")
		}
		words = append(words, lex[rng.IntN(len(lex))], fillers[rng.IntN(len(fillers))])
		out[i] = Example{Text: strings.Join(words, " "), Label: label}
	}
	return out
}

func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Name = "test"
	cfg.Features.HashBits = 12
	cfg.DataDigest = "sha256:" + strings.Repeat("0", 64)
	return cfg
}

func trainSmall(t testing.TB) *model.Model {
	t.Helper()
	m, err := Fit(synthetic(2000, 1), smallConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTrainLearnsSignalAndNegation(t *testing.T) {
	m := trainSmall(t)
	ev, err := Evaluate(m, synthetic(500, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Accuracy() < 0.95 {
		t.Fatalf("accuracy on held-out synthetic data %.3f, want >= 0.95", ev.Accuracy())
	}
	if p := m.Classify("the film was great"); p.Label != "positive" {
		t.Errorf("'great' -> %+v", p)
	}
	if p := m.Classify("the film was not great"); p.Label != "negative" {
		t.Errorf("'not great' -> %+v", p)
	}
	p := m.Classify("a dull movie")
	if p.Label != "negative" || p.Score < 0.5 || p.Score > 1 || math.Abs(float64(p.Positive+p.Score-1)) > 1e-6 {
		t.Errorf("'dull' -> %+v", p)
	}
}

func TestTrainIsDeterministic(t *testing.T) {
	a, err := trainSmall(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := trainSmall(t).Encode()
	if !bytes.Equal(a, b) {
		t.Fatal("two trainings with the same data and seed differ")
	}
	cfg := smallConfig()
	cfg.Seed = 2
	m, _ := Fit(synthetic(2000, 1), cfg, nil)
	c, _ := m.Encode()
	if bytes.Equal(a, c) {
		t.Fatal("a different seed gave the same artifact")
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	if _, err := Fit(nil, smallConfig(), nil); err == nil {
		t.Error("no examples: no error")
	}
	if _, err := Fit([]Example{{Text: "x", Label: 2}}, smallConfig(), nil); err == nil {
		t.Error("label 2: no error")
	}
	cfg := smallConfig()
	cfg.Features.HashBits = 30
	if _, err := Fit(synthetic(10, 1), cfg, nil); err == nil {
		t.Error("hash_bits 30: no error")
	}
}

func TestExplain(t *testing.T) {
	m := trainSmall(t)
	got := m.Explain("the plot was dull dull. it was not great", 3)
	if len(got) != 3 {
		t.Fatalf("Explain returned %d features: %+v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if abs(got[i].Weight) > abs(got[i-1].Weight) {
			t.Fatalf("not sorted by magnitude: %+v", got)
		}
	}
	names := map[string]float32{}
	for _, c := range m.Explain("the plot was dull dull. it was not great", 100) {
		names[c.Feature] = c.Weight
	}
	if names["NOT_great"] >= 0 || names["dull"] >= 0 {
		t.Fatalf("NOT_great and dull should push negative: %v", names)
	}
	if _, ok := names["not great"]; !ok {
		t.Fatalf("bigram 'not great' missing: %v", names)
	}
	if m.Explain("x", 0) != nil {
		t.Fatal("k=0 should return nothing")
	}
}

// TestBalanceClasses: with nine positive examples to one negative, the
// unbalanced model's bias favours positive; balanced, it starts from
// even odds.
func TestBalanceClasses(t *testing.T) {
	var ex []Example
	for i := range 500 {
		label := 0
		if i%10 != 0 {
			label = 1
		}
		ex = append(ex, Example{Text: fmt.Sprintf("text %d", i), Label: label})
	}
	cfg := DefaultConfig()
	cfg.Features.HashBits = 16
	skewed, err := Fit(ex, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BalanceClasses = true
	balanced, err := Fit(ex, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, b := skewed.Classify("unseen words only").Positive, balanced.Classify("unseen words only").Positive
	if s < 0.65 || b < 0.4 || b > 0.6 || !balanced.Meta().Training.BalanceClasses {
		t.Errorf("an unseen text: %.3f unbalanced (want ≥ 0.65), %.3f balanced (want about 0.5)", s, b)
	}
}

func abs(x float32) float32 {
	return float32(math.Abs(float64(x)))
}
