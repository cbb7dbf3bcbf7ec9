package onnxrt_test

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

func session(t *testing.T) *onnxrt.Session {
	t.Helper()
	rt, err := onnxrt.Open(testenv.ONNXRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	if rt.Version != "1.30.0" || !strings.HasPrefix(rt.BuildInfo(), "ORT Build Info") {
		t.Fatalf("library version %q, build %q: want the pinned 1.30.0", rt.Version, rt.BuildInfo())
	}
	s, err := rt.NewSession(bundletest.Model, onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestSessionDescribesTheModel: the inputs and outputs are read from the
// graph by name, with their types and free dimensions.
func TestSessionDescribesTheModel(t *testing.T) {
	s := session(t)
	if len(s.Inputs) != 2 || s.Inputs[0].Name != "input_ids" || s.Inputs[1].Name != "attention_mask" ||
		s.Inputs[0].Type != onnxrt.TypeInt64 || len(s.Inputs[0].Shape) != 2 || s.Inputs[0].Shape[0] != -1 {
		t.Errorf("inputs %+v", s.Inputs)
	}
	if len(s.Outputs) != 1 || s.Outputs[0].Name != "logits" || s.Outputs[0].Type != onnxrt.TypeFloat ||
		len(s.Outputs[0].Shape) != 2 || s.Outputs[0].Shape[1] != 3 {
		t.Errorf("outputs %+v", s.Outputs)
	}
}

// TestRunComputesTheGraph: the tiny model's logits are [s, -s, s/2+1] for
// s the sum of a row's masked ids (model/bundle/bundletest/tiny.py), from goroutines at
// once.
func TestRunComputesTheGraph(t *testing.T) {
	s := session(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				base := int64(g*100 + i)
				ids := []int64{base, 2, 3, 101, 7, 0}
				mask := []int64{1, 1, 1, 1, 0, 0}
				out, err := s.Run([]onnxrt.Int64Input{{Values: ids, Shape: []int64{2, 3}}, {Values: mask, Shape: []int64{2, 3}}})
				if err != nil {
					t.Error(err)
					return
				}
				sums := []float32{float32(base + 5), 101}
				o := out[0]
				if len(o.Shape) != 2 || o.Shape[0] != 2 || o.Shape[1] != 3 {
					t.Errorf("shape %v", o.Shape)
					return
				}
				for r, sum := range sums {
					want := []float32{sum, -sum, sum/2 + 1}
					for c := range 3 {
						if math.Abs(float64(o.Values[3*r+c]-want[c])) > 1e-4 {
							t.Errorf("row %d: %v, want %v", r, o.Values[3*r:3*r+3], want)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestBadInputIsAnError: wrong counts, shapes that do not match the
// values, garbage for a model and a closed session are errors, not
// crashes.
func TestBadInputIsAnError(t *testing.T) {
	s := session(t)
	ok := onnxrt.Int64Input{Values: []int64{1, 2}, Shape: []int64{1, 2}}
	for name, in := range map[string][]onnxrt.Int64Input{
		"one input of two":       {ok},
		"values beyond shape":    {ok, {Values: []int64{1, 2, 3}, Shape: []int64{1, 2}}},
		"empty":                  {ok, {}},
		"rank the model refuses": {{Values: []int64{1, 2}, Shape: []int64{2}}, {Values: []int64{1, 2}, Shape: []int64{2}}},
	} {
		if _, err := s.Run(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	rt, _ := onnxrt.Open(testenv.ONNXRuntime(t))
	for _, model := range [][]byte{nil, []byte("not a model"), make([]byte, 4096)} {
		if _, err := rt.NewSession(model, onnxrt.SessionOptions{}); err == nil {
			t.Errorf("model %q: no error", model[:min(len(model), 12)])
		}
	}
	s.Close()
	if _, err := s.Run([]onnxrt.Int64Input{ok, ok}); err == nil {
		t.Error("a closed session ran")
	}
	if _, err := onnxrt.Open("/nonexistent/libonnxruntime.so.1"); err == nil {
		t.Error("a missing library loaded")
	}
}
