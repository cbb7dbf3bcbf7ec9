package train

import (
	"bytes"
	"testing"

	"github.com/sentimentpro/sentiment/model"
)

// lexiconData is a small corpus where "good" and "awful" carry the label
// and "superb", "dreadful" never occur.
func lexiconData() []Example {
	var ex []Example
	for i := range 200 {
		ex = append(ex, Example{Text: "a good film", Label: 1}, Example{Text: "an awful film", Label: 0})
		if i%2 == 0 {
			ex = append(ex, Example{Text: "good", Label: 1}, Example{Text: "awful", Label: 0})
		}
	}
	return ex
}

func lexiconConfig(lex map[string]float64) Config {
	cfg := DefaultConfig()
	cfg.Features.HashBits = 16
	cfg.Lexicon, cfg.LexiconID = lex, "test"
	return cfg
}

// TestLexiconBackOff: a lexicon word the data never showed takes the
// learned weight of seen words of its valence band; the model is
// otherwise unchanged, and training stays deterministic.
func TestLexiconBackOff(t *testing.T) {
	lex := map[string]float64{"good": 1.9, "superb": 2.1, "awful": -2.0, "dreadful": -1.9, "film": 0}
	plain, err := Fit(lexiconData(), lexiconConfig(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	with, err := Fit(lexiconData(), lexiconConfig(lex), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := plain.Classify("superb"); p.Positive != plain.Classify("zzz").Positive {
		t.Fatalf("without a lexicon an unseen word should read like any unknown word: %v", p)
	}
	if p := with.Classify("superb"); p.Index != 1 {
		t.Errorf("superb (unseen, valence 2.1, the band of good) reads %v", p)
	}
	if p := with.Classify("dreadful"); p.Index != 0 {
		t.Errorf("dreadful (unseen, valence -1.9, the band of awful) reads %v", p)
	}
	for _, text := range []string{"a good film", "an awful film", "good", "zzz"} {
		if a, b := plain.Classify(text), with.Classify(text); a != b {
			t.Errorf("%q: %v without the lexicon, %v with it: seen words must keep their weights", text, a, b)
		}
	}
	again, _ := Fit(lexiconData(), lexiconConfig(lex), nil)
	x, _ := with.Encode()
	y, _ := again.Encode()
	if !bytes.Equal(x, y) {
		t.Error("training with a lexicon is not deterministic")
	}
	if _, err := Fit(lexiconData(), Config{Lexicon: lex, Features: model.Features{HashBits: 16, NGrams: 1, Norm: model.NormNone}, Epochs: 1, LearningRate: 0.1}, nil); err == nil {
		t.Error("a lexicon without an ID was accepted")
	}
}

// TestMinCount: a feature of fewer examples than MinCount is not trained.
func TestMinCount(t *testing.T) {
	ex := append(lexiconData(), Example{Text: "once", Label: 1}, Example{Text: "once", Label: 1})
	cfg := lexiconConfig(nil)
	cfg.MinCount = 3
	m, err := Fit(ex, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, unknown := m.Classify("once"), m.Classify("zzz"); got != unknown {
		t.Errorf("a word of 2 examples with min count 3 reads %v, an unknown one %v", got, unknown)
	}
	cfg.MinCount = 2
	m, _ = Fit(ex, cfg, nil)
	if got, unknown := m.Classify("once"), m.Classify("zzz"); got.Positive <= unknown.Positive {
		t.Errorf("a word of 2 positive examples with min count 2 reads %v, an unknown one %v", got, unknown)
	}
}
