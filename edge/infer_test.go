package edge

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// threeLabels is a predictor of three labels whose probabilities follow
// the words of a text: "great" is positive, "awful" negative, anything
// else neutral. flip swaps positive and negative (a broken candidate).
type threeLabels struct{ flip bool }

func (threeLabels) Labels() []string { return []string{"negative", "neutral", "positive"} }
func (threeLabels) Digest() string   { return "sha256:" + strings.Repeat("3", 64) }
func (threeLabels) Platform() string { return "test-three" }

func (p threeLabels) Predict(texts []string, probs []float32) error {
	for i, t := range texts {
		row := []float32{0.2, 0.6, 0.2}
		switch {
		case strings.Contains(t, "great") != p.flip:
			row = []float32{0.1, 0.2, 0.7}
		case strings.Contains(t, "awful") != p.flip:
			row = []float32{0.7, 0.2, 0.1}
		}
		copy(probs[3*i:], row)
	}
	return nil
}

// TestInferServesAnyPredictor: a three-label predictor answers through
// /v1/predict, the batch route and OIP infer (JSON and binary) by the one
// Infer: the label is the arg-max, every label's probability is in the
// answer, and a candidate's split and shadow apply to it as to the
// built-in model.
func TestInferServesAnyPredictor(t *testing.T) {
	srv, c := newTestServer(t, Config{TrustedProxies: memPeer})
	srv.Swap(&Serving{Predictor: threeLabels{}, Name: "sentiment", Version: "three-v1", Source: "registry"})

	var one struct {
		Label         string
		Score         float64
		Probabilities map[string]float64
		Version       string
	}
	r := call(t, c, "POST", "/v1/predict", `{"text":"a great film"}`)
	if err := json.Unmarshal([]byte(r.body), &one); err != nil || r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if one.Label != "positive" || one.Score != 0.7 || len(one.Probabilities) != 3 || one.Probabilities["neutral"] != 0.2 || one.Version != "three-v1" {
		t.Errorf("/v1/predict: %s", r.body)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"a film","explain":true}`); r.code != 400 || !strings.Contains(r.body, "cannot explain") {
		t.Errorf("explain of a model that cannot: %d %s", r.code, r.body)
	}

	var batch struct {
		Predictions []struct {
			Label         string
			Probabilities map[string]float64
		}
	}
	r = call(t, c, "POST", "/v1/predict/batch", `{"texts":["awful","so-so","great"]}`)
	if err := json.Unmarshal([]byte(r.body), &batch); err != nil || len(batch.Predictions) != 3 {
		t.Fatalf("batch: %d %s", r.code, r.body)
	}
	for i, want := range []string{"negative", "neutral", "positive"} {
		if p := batch.Predictions[i]; p.Label != want || len(p.Probabilities) != 3 {
			t.Errorf("batch[%d]: %+v, want %s with three probabilities", i, p, want)
		}
	}

	const inputs = `"inputs":[{"name":"text","shape":[3],"datatype":"BYTES","data":["awful","so-so","great"]}]`
	var out struct {
		Outputs []struct {
			Name     string
			Datatype string
			Shape    []int
			Data     []any
		}
	}
	r = call(t, c, "POST", "/v2/models/sentiment/infer", "{"+inputs+"}")
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || len(out.Outputs) != 3 {
		t.Fatalf("OIP infer: %d %s", r.code, r.body)
	}
	if o := out.Outputs[0]; o.Name != "label" || len(o.Data) != 3 || o.Data[1] != "neutral" {
		t.Errorf("OIP label output: %+v", o)
	}
	if o := out.Outputs[2]; o.Name != "probabilities" || o.Datatype != "FP32" || len(o.Shape) != 2 || o.Shape[0] != 3 || o.Shape[1] != 3 || len(o.Data) != 9 || o.Data[8].(float64) != 0.7 {
		t.Errorf("OIP probabilities output: %+v, want shape [3 3] and 9 values", o)
	}
	r = call(t, c, "POST", "/v2/models/sentiment/infer", `{`+inputs+`,"outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]}`)
	n, _ := strconv.Atoi(string(r.hdr.Peek(inferHeaderLength)))
	if r.code != 200 || n <= 0 || len(r.body)-n != 9*4 {
		t.Fatalf("OIP binary probabilities: %d, header %d, %d bytes", r.code, n, len(r.body))
	}
	blob := []byte(r.body[n:])
	if p := math.Float32frombits(binary.LittleEndian.Uint32(blob[0:])); p != 0.7 {
		t.Errorf("binary probabilities: the first text's first label is %v, want 0.7 (negative)", p)
	}
	if r := call(t, c, "GET", "/v2/models/sentiment", ""); !strings.Contains(r.body, `"platform":"test-three"`) || !strings.Contains(r.body, `"shape":[-1,3]`) {
		t.Errorf("OIP metadata: %s", r.body)
	}

	// The split sends every key to a candidate at 100 %.
	if err := srv.SetCandidate(&Candidate{Serving: &Serving{Predictor: threeLabels{}, Name: "sentiment", Version: "three-v2"}, Percent: 100}); err != nil {
		t.Fatal(err)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"great"}`, "X-Routing-Key", "user-1"); !strings.Contains(r.body, `"version":"three-v2"`) {
		t.Errorf("a candidate at 100 %%: %s", r.body)
	}
	// A flipped candidate in the shadow disagrees on the texts that are
	// not neutral.
	if err := srv.SetCandidate(&Candidate{Serving: &Serving{Predictor: threeLabels{flip: true}, Name: "sentiment", Version: "three-flipped"}, ShadowRate: 1}); err != nil {
		t.Fatal(err)
	}
	disagree := agreement(&Serving{Name: "sentiment", Version: "three-flipped"}, false)
	for i := range 20 {
		text := []string{"great", "awful"}[i%2]
		if r := call(t, c, "POST", "/v1/predict", `{"text":"`+text+`"}`, "X-Routing-Key", "user-"+strconv.Itoa(i)); !strings.Contains(r.body, `"version":"three-v1"`) {
			t.Fatalf("with a shadow, the stable version answers: %s", r.body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for disagree.Get()+metrics.GetOrCreateCounter(`edge_shadow_dropped_total`).Get() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if disagree.Get() == 0 {
		t.Error("the flipped three-label candidate disagreed with nothing in the shadow")
	}
}
