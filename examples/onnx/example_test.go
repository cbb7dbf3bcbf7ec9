// Package onnx_test holds the example ONNX models (train.py) to what
// PyTorch answered for them when they were trained: the tokenizer's ids
// and the edge's probabilities.
package onnx_test

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/inference/onnxmodel"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
)

// reference is one line of BUNDLE.reference.jsonl.
type reference struct {
	Text          string    `json:"text"`
	IDs           []int64   `json:"ids"`
	Probabilities []float32 `json:"probabilities"`
}

func readReferences(t *testing.T, path string) []reference {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var refs []reference
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r reference
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	return refs
}

// TestExamplesMatchPyTorch: for every reference text, the Go tokenizer
// gives the ids train.py's tokenizer gave, and the model served through
// ONNX Runtime, in batches, gives PyTorch's arg-max and its
// probabilities within 1e-3.
func TestExamplesMatchPyTorch(t *testing.T) {
	rt, err := onnxrt.Open(testenv.ONNXRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sentiment-tiny-bert", "imdb3-tiny-bert"} {
		t.Run(name, func(t *testing.T) {
			data, err := bundle.ReadPath(name, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			b, err := bundle.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnxmodel.Load(rt, b, "sha256:example", onnxmodel.Config{MaxBatch: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			refs := readReferences(t, name+".reference.jsonl")
			texts := make([]string, len(refs))
			for i, r := range refs {
				texts[i] = r.Text
				if got := b.Tokenizer.Encode(r.Text).IDs; !slices.Equal(got, r.IDs) {
					t.Errorf("text %d %.60q: ids %v, train.py's %v", i, r.Text, got, r.IDs)
				}
			}
			labels := len(m.Labels())
			probs := make([]float32, len(texts)*labels)
			if err := m.Predict(texts, probs); err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i, r := range refs {
				row := probs[i*labels : (i+1)*labels]
				if inference.ArgMax(row) != inference.ArgMax(r.Probabilities) {
					t.Errorf("text %d %.60q: arg-max %d, PyTorch's %d (%v vs %v)", i, r.Text, inference.ArgMax(row), inference.ArgMax(r.Probabilities), row, r.Probabilities)
				}
				for j := range row {
					worst = math.Max(worst, math.Abs(float64(row[j]-r.Probabilities[j])))
				}
			}
			if worst > 1e-3 {
				t.Errorf("largest probability difference from PyTorch %.2g, want <= 1e-3", worst)
			}
			t.Logf("%d texts: ids equal, arg-max equal, largest probability difference %.2g", len(refs), worst)
		})
	}
}
