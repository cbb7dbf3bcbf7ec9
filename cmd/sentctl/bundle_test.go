package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestBundleCLI takes an ONNX export's directory as the ML team has it
// through pack, sign, verify, predict and publish --dir; a broken one is
// refused before any upload, naming the problem.
func TestBundleCLI(t *testing.T) {
	srv := startRegistry(t)
	t.Setenv("SENTCTL_REGISTRY", srv.URL)
	t.Setenv("SENTCTL_TOKEN", registrytest.PublisherToken)
	t.Setenv("SENTCTL_ONNXRUNTIME_LIB", testenv.ONNXRuntime(t))
	work := t.TempDir()
	export := bundletest.Dir(t, nil)

	run := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := sentctl(t, args...)
		if code != wantCode {
			t.Fatalf("sentctl %s: exit %d, want %d: %s%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	out := run(0, "pack", "--dir", export, "--out", filepath.Join(work, "a.bundle"))
	if !strings.Contains(out, "labels: negative, neutral, positive") || !strings.Contains(out, "inputs: input_ids, attention_mask") {
		t.Fatalf("pack said %q", out)
	}
	run(0, "pack", "--dir", export, "--out", filepath.Join(work, "b.bundle"))
	a, _ := os.ReadFile(filepath.Join(work, "a.bundle"))
	b, _ := os.ReadFile(filepath.Join(work, "b.bundle"))
	if !bytes.Equal(a, b) {
		t.Fatal("packing the same directory twice made different bundles")
	}

	run(0, "keygen", "--out", filepath.Join(work, "k"))
	run(0, "sign", "--key", filepath.Join(work, "k.key"), "--model", export)
	run(0, "verify", "--pub", filepath.Join(work, "k.pub"), "--model", filepath.Join(work, "a.bundle"), "--sig", export+".sig")

	out = run(0, "predict", "--model", export, "good film")
	var p struct {
		Label         string             `json:"label"`
		Probabilities map[string]float64 `json:"probabilities"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Label != "negative" || len(p.Probabilities) != 3 {
		t.Fatalf("predict: %q (%v)", out, err)
	}
	out = run(1, "eval", "--model", export, "--data", writeTSV(t, work, "d.tsv", corpus()))
	if !strings.Contains(out, "eval reads two-label data") {
		t.Fatalf("eval of a three-label model: %q", out)
	}

	out = run(0, "publish", "--model", "tiny", "--version", "v1", "--dir", export)
	if !strings.Contains(out, "published tiny/v1") || !strings.Contains(out, "onnx, labels negative,neutral,positive") || !strings.Contains(out, "signed") {
		t.Fatalf("publish --dir: %q", out)
	}

	broken := bundletest.Dir(t, map[string]string{bundle.ConfigFile: `{"id2label": {"0": "neg", "1": "pos"}, "max_position_embeddings": 64}`})
	out = run(1, "publish", "--model", "tiny", "--version", "v2", "--dir", broken)
	if !strings.Contains(out, "logits has 3 columns but config.json's id2label names 2 labels") {
		t.Fatalf("publish of a broken bundle: %q", out)
	}
	out = run(2, "publish", "--model", "tiny", "--version", "v2", "--dir", export, "--file", filepath.Join(work, "a.bundle"))
	if !strings.Contains(out, "give --file or --dir") {
		t.Fatalf("publish with both: %q", out)
	}
}
