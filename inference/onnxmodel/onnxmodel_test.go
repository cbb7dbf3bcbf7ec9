package onnxmodel

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

func tinyBundle(t testing.TB) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Open(bundletest.Pack(t, map[string]string{
		bundle.ConfigFile: `{"id2label": {"0": "negative", "1": "neutral", "2": "positive"}, "max_position_embeddings": 16}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t testing.TB, cfg Config) *Model {
	t.Helper()
	rt, err := onnxrt.Open(testenv.ONNXRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(rt, tinyBundle(t), "sha256:test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

var want = bundletest.Probabilities

func checkRow(t *testing.T, what string, got []float32, s float64) {
	t.Helper()
	w := want(s)
	for i := range w {
		if math.Abs(float64(got[i]-w[i])) > 1e-6 {
			t.Fatalf("%s: probabilities %v, want %v (ids summing to %v)", what, got, w, s)
		}
	}
}

func TestPredict(t *testing.T) {
	m := load(t, Config{})
	if m.Platform() != "onnxruntime_onnx" || len(m.Labels()) != 3 {
		t.Fatalf("platform %q labels %v", m.Platform(), m.Labels())
	}
	texts := []string{"good", "bad film", "", "GOOD good good"}
	sums := []float64{2 + 4 + 3, 2 + 5 + 6 + 3, 2 + 3, 2 + 12 + 3}
	probs := make([]float32, len(texts)*3)
	if err := m.Predict(texts, probs); err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		checkRow(t, fmt.Sprintf("text %q in a batch padded to the longest", texts[i]), probs[i*3:(i+1)*3], sums[i])
	}
	if err := m.WarmUp(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchesConcurrentRequests sends many requests at once: they are run
// in batches of several, and each gets its own text's answer.
func TestBatchesConcurrentRequests(t *testing.T) {
	m := load(t, Config{MaxBatch: 16, MaxQueueDelay: 5 * time.Millisecond})
	const clients, each = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := 1 + (c+i)%7 // "good" n times: ids sum to 5 + 4n
				text := ""
				for range n {
					text += "good "
				}
				probs := make([]float32, 3)
				if err := m.Predict([]string{text}, probs); err != nil {
					errs <- err
					return
				}
				w := want(float64(5 + 4*n))
				if math.Abs(float64(probs[2]-w[2])) > 1e-6 {
					errs <- fmt.Errorf("client %d: %q got %v, want %v", c, text, probs, w)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := m.Stats()
	if st.Texts != clients*each || st.Batches >= st.Texts {
		t.Fatalf("stats %+v: want %d texts in fewer runs", st, clients*each)
	}
	t.Logf("%d texts in %d runs (%.1f a run)", st.Texts, st.Batches, float64(st.Texts)/float64(st.Batches))
}

func TestOverload(t *testing.T) {
	m := load(t, Config{QueueTimeout: time.Nanosecond})
	err := m.Predict([]string{"good"}, make([]float32, 3))
	if !errors.Is(err, inference.ErrOverloaded) {
		t.Fatalf("a request past its deadline: err = %v, want ErrOverloaded", err)
	}
	// A full queue refuses at once. The runner is not started here.
	full := &Model{queue: make(chan *request, 1), stopped: make(chan struct{})}
	if err := full.enqueue(&request{}); err != nil {
		t.Fatal(err)
	}
	if err := full.enqueue(&request{}); !errors.Is(err, inference.ErrOverloaded) {
		t.Fatalf("a full queue: err = %v, want ErrOverloaded", err)
	}
	if st := m.Stats(); st.Rejected != 1 {
		t.Errorf("stats %+v, want 1 rejected", st)
	}
}

func TestClose(t *testing.T) {
	m := load(t, Config{})
	if err := m.Predict([]string{"good"}, make([]float32, 3)); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := m.Predict([]string{"good"}, make([]float32, 3)); err == nil {
		t.Fatal("Predict after Close succeeded")
	}
}

func TestPlan(t *testing.T) {
	f := func(lengths []int, overhead int, want [][2]int) {
		t.Helper()
		if got := plan(lengths, overhead); !slices.Equal(got, want) {
			t.Errorf("plan(%v, %d) = %v, want %v", lengths, overhead, got, want)
		}
	}
	f([]int{10, 10, 10, 10}, 64, [][2]int{{0, 4}})                                 // same lengths: one run
	f([]int{5, 5, 5, 5, 5, 5, 5, 5, 120}, 64, [][2]int{{0, 8}, {8, 9}})            // one long text runs apart
	f([]int{5, 6, 7, 8}, 64, [][2]int{{0, 4}})                                     // padding cheaper than a run
	f([]int{4, 4, 4, 4, 4, 4, 4, 4, 60, 60, 60, 60}, 8, [][2]int{{0, 8}, {8, 12}}) // two groups
	f(nil, 64, nil)
}
