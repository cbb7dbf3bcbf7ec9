package edge_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

func onnxConfig(t *testing.T) edge.ONNXConfig {
	t.Helper()
	rt, err := onnxrt.Open(testenv.ONNXRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	return edge.ONNXConfig{Runtime: rt}
}

// TestONNXBundleIsServedAndReleased: a promote from the built-in model to
// an ONNX bundle under load fails no request; the bundle answers with its
// three labels and the probabilities its graph gives; a promote back
// releases its session once RetireGrace has passed.
func TestONNXBundleIsServedAndReleased(t *testing.T) {
	defer func(g time.Duration) { edge.RetireGrace = g }(edge.RetireGrace)
	edge.RetireGrace = 200 * time.Millisecond
	r := newRig(t)
	r.publish(t, "v1", artifact(t, 1), nil)
	r.publish(t, "onnx", bundletest.Pack(t, nil), nil)
	r.promote(t, "v1")
	srv, url := startEdge(t, r, edge.SyncConfig{ONNX: onnxConfig(t)})
	waitServing(t, srv, "v1", 10*time.Second)

	l := testenv.StartLoad(testenv.LoadConfig{URL: url + "/v1/predict", Workers: 8})
	time.Sleep(200 * time.Millisecond)
	r.promote(t, "onnx")
	waitServing(t, srv, "onnx", 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	l.Stop()
	if l.Failed.Load()+l.Rejected.Load() != 0 || l.Sent.Load() == 0 {
		t.Fatalf("requests across the swap to the ONNX model: %s", l.Summary())
	}

	// "good film" is [CLS] good film [SEP]: ids 2+4+6+3.
	resp, err := http.Post(url+"/v1/predict", "application/json", strings.NewReader(`{"text": "Good film"}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Label         string             `json:"label"`
		Version       string             `json:"version"`
		Probabilities map[string]float64 `json:"probabilities"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	want := bundletest.Probabilities(15)
	for i, label := range []string{"negative", "neutral", "positive"} {
		if math.Abs(out.Probabilities[label]-float64(want[i])) > 1e-3 {
			t.Fatalf("answer %+v, want probabilities %v", out, want)
		}
	}
	if out.Label != "negative" || out.Version != "onnx" {
		t.Fatalf("answer %+v", out)
	}
	resp, err = http.Get(url + "/v2/models/demo")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Platform string `json:"platform"`
		Outputs  []struct {
			Name  string  `json:"name"`
			Shape []int64 `json:"shape"`
		} `json:"outputs"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.Platform != "onnxruntime_onnx" || len(meta.Outputs) != 3 || meta.Outputs[2].Shape[1] != 3 {
		t.Fatalf("OIP model metadata %+v", meta)
	}

	onnx := srv.Current()
	r.promote(t, "v1")
	waitServing(t, srv, "v1", 10*time.Second)
	testenv.Eventually(t, 10*time.Second, "the retired ONNX model is closed", func() error {
		if onnx.Predictor.Predict([]string{"good"}, make([]float32, 3)) == nil {
			return errors.New("it still predicts")
		}
		return nil
	})
}

// TestONNXBundleRefused: an edge without ONNX Runtime, and one sent a
// signed bundle whose graph ONNX Runtime cannot load, keep serving what
// they have and say why, in readiness and the log.
func TestONNXBundleRefused(t *testing.T) {
	r := newRig(t)
	r.publish(t, "v1", artifact(t, 1), nil)
	r.publish(t, "onnx", bundletest.Pack(t, nil), nil)
	// Declares input_ids and logits, computes nothing: the registry's
	// checks pass, ONNX Runtime refuses it.
	hollow := bundletest.Graph([]bundle.Tensor{{Name: bundle.InputIDs, Type: bundle.TypeInt64, Shape: []int64{-1, -1}}},
		[]bundle.Tensor{{Name: bundle.OutputLogits, Type: bundle.TypeFloat, Shape: []int64{-1, 3}}})
	r.publish(t, "hollow", bundletest.Pack(t, map[string]string{bundle.ModelFile: hollow}), nil)
	r.promote(t, "v1")

	for _, c := range []struct {
		name, version, reason string
		onnx                  edge.ONNXConfig
	}{
		{"no runtime", "onnx", "this edge cannot serve ONNX models: ONNX Runtime is not available", edge.ONNXConfig{}},
		{"hollow graph", "hollow", "cannot load ONNX model", onnxConfig(t)},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, url := startEdge(t, r, edge.SyncConfig{ONNX: c.onnx})
			waitServing(t, srv, "v1", 10*time.Second)
			r.promote(t, c.version)
			testenv.Eventually(t, 10*time.Second, "the bundle is refused", func() error {
				if r := srv.Slots()[0].LastRefusal(); r == nil || r.Version != c.version {
					return fmt.Errorf("last refusal %+v", r)
				}
				return nil
			})
			if got := srv.Current().Version; got != "v1" {
				t.Fatalf("serving %s after a refused promote, want v1", got)
			}
			code, body := get(t, url+"/health/ready")
			if code != fasthttp.StatusOK || !strings.Contains(body, `"last_refused":{"version":"`+c.version) || !strings.Contains(body, c.reason) {
				t.Fatalf("readiness: %d %s, want 200 naming %s and %q", code, body, c.version, c.reason)
			}
			r.promote(t, "v1")
		})
	}
	_, metrics := get(t, "") // the process's metrics, not one edge's
	if !strings.Contains(metrics, `edge_model_rejected_total{reason="onnxruntime_unavailable"}`) {
		t.Error("no edge_model_rejected_total{reason=\"onnxruntime_unavailable\"} series")
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	if url == "" {
		var sb strings.Builder
		metrics.WritePrometheus(&sb, false)
		return 200, sb.String()
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
