package bundle_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

func bundleDir(t *testing.T, edits map[string]string) string { return bundletest.Dir(t, edits) }

func pack(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.PackDir(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPackIsDeterministic(t *testing.T) {
	dir := bundleDir(t, nil)
	first := pack(t, dir)
	for _, name := range []string{bundle.ConfigFile, bundle.ModelFile} {
		if err := os.Chtimes(filepath.Join(dir, name), time.Now(), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, bundle.ConfigFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".DS_Store"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if second := pack(t, dir); !bytes.Equal(first, second) {
		t.Fatal("the same files packed twice (new times, modes, a hidden file) made different bytes")
	}
	if !bundle.Sniff(first) {
		t.Error("Sniff does not know a bundle")
	}
	if bundle.Sniff([]byte("SAPM\x01\x00\x00\x00")) {
		t.Error("Sniff takes the built-in format for a bundle")
	}
}

func TestOpenAndInspect(t *testing.T) {
	data := pack(t, bundleDir(t, nil))
	b, err := bundle.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	info, err := bundle.Inspect(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []bundle.Info{b.Info, info} {
		if !slices.Equal(got.Labels, []string{"negative", "neutral", "positive"}) || got.MaxLength != 64 ||
			!slices.Equal(got.Inputs, []string{bundle.InputIDs, bundle.AttentionMask}) || got.Tokenizer != "WordPiece" ||
			got.Opset != 14 || got.Name != "TinyForSequenceClassification" || len(got.Files) != 5 {
			t.Errorf("info = %+v", got)
		}
	}
	if !bytes.Equal(b.Model, bundletest.Model) {
		t.Error("Open's model bytes are not model.onnx")
	}
	if ids := b.Tokenizer.Encode("Good film").IDs; !slices.Equal(ids, []int64{2, 4, 6, 3}) {
		t.Errorf("tokenizer ids %v", ids)
	}
	if b.Tokenizer.MaxLength() != 64 {
		t.Errorf("tokenizer truncates at %d, want the bundle's 64", b.Tokenizer.MaxLength())
	}
}

var (
	ids    = bundle.Tensor{Name: bundle.InputIDs, Type: bundle.TypeInt64, Shape: []int64{-1, -1}}
	mask   = bundle.Tensor{Name: bundle.AttentionMask, Type: bundle.TypeInt64, Shape: []int64{-1, -1}}
	logits = bundle.Tensor{Name: bundle.OutputLogits, Type: bundle.TypeFloat, Shape: []int64{-1, 3}}
)

func TestRefusals(t *testing.T) {
	f := func(name string, edits map[string]string, wantInMessage string) {
		t.Helper()
		data := pack(t, bundleDir(t, edits))
		_, errOpen := bundle.Open(data)
		_, errInspect := bundle.Inspect(bytes.NewReader(data), int64(len(data)))
		for _, err := range []error{errOpen, errInspect} {
			if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), wantInMessage) {
				t.Errorf("%s: err = %v, want bundle.ErrInvalid naming %q", name, err, wantInMessage)
			}
		}
	}
	f("no model", map[string]string{bundle.ModelFile: ""}, "no model.onnx")
	f("no tokenizer", map[string]string{bundle.TokenizerFile: ""}, "no tokenizer.json")
	f("no config", map[string]string{bundle.ConfigFile: ""}, "no config.json")
	f("corrupt model", map[string]string{bundle.ModelFile: "\xff\xff\xff\xff garbage"}, "model.onnx: not a valid ONNX model")
	f("no input_ids", map[string]string{bundle.ModelFile: bundletest.Graph([]bundle.Tensor{mask}, []bundle.Tensor{logits})}, `no input "input_ids"`)
	f("unknown input", map[string]string{bundle.ModelFile: bundletest.Graph([]bundle.Tensor{ids, {Name: "pixel_values", Type: bundle.TypeFloat}}, []bundle.Tensor{logits})}, `input "pixel_values"`)
	f("float input", map[string]string{bundle.ModelFile: bundletest.Graph([]bundle.Tensor{{Name: bundle.InputIDs, Type: bundle.TypeFloat, Shape: []int64{-1, -1}}}, []bundle.Tensor{logits})}, "want int64")
	f("3-D logits", map[string]string{bundle.ModelFile: bundletest.Graph([]bundle.Tensor{ids}, []bundle.Tensor{{Name: bundle.OutputLogits, Type: bundle.TypeFloat, Shape: []int64{-1, -1, 3}}})}, "logits is 3-D")
	f("no logits", map[string]string{bundle.ModelFile: bundletest.Graph([]bundle.Tensor{ids}, []bundle.Tensor{{Name: "last_hidden_state", Type: bundle.TypeFloat}})}, `no output "logits" (outputs: "last_hidden_state")`)
	f("labels do not match", map[string]string{bundle.ConfigFile: `{"id2label": {"0": "neg", "1": "pos"}, "max_position_embeddings": 64}`}, "logits has 3 columns but config.json's id2label names 2 labels")
	f("label2id disagrees", map[string]string{bundle.ConfigFile: strings.Replace(bundletest.Config, `"neutral": 1, "positive": 2`, `"neutral": 2, "positive": 1`, 1)}, "label2id gives")
	f("id2label gap", map[string]string{bundle.ConfigFile: `{"id2label": {"0": "a", "2": "b", "3": "c"}, "max_position_embeddings": 64}`}, `id2label key "`)
	f("one label", map[string]string{bundle.ConfigFile: `{"id2label": {"0": "a"}}`}, "names 1 labels")
	f("bad tokenizer", map[string]string{bundle.TokenizerFile: `{"model": {"type": "Unigram", "vocab": [["a", 0]]}}`}, "tokenizer.json")
	f("no length", map[string]string{bundle.ConfigFile: strings.Replace(bundletest.Config, `"max_position_embeddings": 64,`, ``, 1),
		bundle.TokenizerConfigFile: `{"model_max_length": 1000000000000000019884624838656}`}, "no sequence length")
	f("pad token unknown", map[string]string{bundle.TokenizerConfigFile: `{"pad_token": "<pad>"}`}, `pad_token "<pad>"`)
}

func TestRefusesBadArchives(t *testing.T) {
	good := pack(t, bundleDir(t, nil))
	f := func(name string, data []byte, maxModel int64, wantInMessage string) {
		t.Helper()
		_, err := bundle.Inspect(bytes.NewReader(data), maxModel)
		if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), wantInMessage) {
			t.Errorf("%s: Inspect err = %v, want bundle.ErrInvalid naming %q", name, err, wantInMessage)
		}
		if maxModel >= int64(len(data)) {
			if _, err := bundle.Open(data); !errors.Is(err, bundle.ErrInvalid) {
				t.Errorf("%s: Open err = %v, want bundle.ErrInvalid", name, err)
			}
		}
	}
	for _, cut := range []int{100, 600, len(good) / 2, len(good) - 1100} {
		f("truncated", good[:cut], 1<<30, "truncated")
	}
	f("oversized model", good, 100, "model.onnx is")
	f("trailing data", append(slices.Clone(good), "junk"...), 1<<30, "after the archive's end")
	f("not an archive", []byte(strings.Repeat("x", 2048)), 1<<30, "not a bundle archive")

	// Hand-made archives: out of order, a directory, a symlink.
	archive := func(hs ...*tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hs {
			tw.WriteHeader(h)
			tw.Write(make([]byte, h.Size))
		}
		tw.Close()
		return buf.Bytes()
	}
	f("out of order", archive(ustarHeader("tokenizer.json", 2), ustarHeader("config.json", 2)), 1<<30, "out of order")
	f("repeated", archive(ustarHeader("config.json", 2), ustarHeader("config.json", 2)), 1<<30, "out of order or repeated")
	f("directory", archive(&tar.Header{Typeflag: tar.TypeDir, Name: "onnx/", Mode: 0o755}), 1<<30, "not a regular file")
	f("symlink", archive(&tar.Header{Typeflag: tar.TypeSymlink, Name: "model.onnx", Linkname: "/etc/passwd"}), 1<<30, "not a regular file")
	f("path", archive(ustarHeader("../config.json", 2)), 1<<30, `file name "../config.json"`)
	f("nested", archive(ustarHeader("onnx/model.onnx", 2)), 1<<30, "no directories")
	pax := ustarHeader("config.json", 2)
	pax.Format, pax.PAXRecords = tar.FormatPAX, map[string]string{"comment": "hidden"}
	f("PAX", archive(pax), 1<<30, "plain ustar")
}

func TestPackRefusesSubdirectories(t *testing.T) {
	dir := bundleDir(t, nil)
	if err := os.Mkdir(filepath.Join(dir, "onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := bundle.PackDir(dir, new(bytes.Buffer))
	if !errors.Is(err, bundle.ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
}

// ustarHeader is the header sentctl pack writes.
func ustarHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, Format: tar.FormatUSTAR}
}

func TestEvalResults(t *testing.T) {
	b, err := bundle.Open(bundletest.Pack(t, map[string]string{bundle.EvalFile: `{"epoch": 3.0, "eval_accuracy": 0.9123, "eval_loss": 0.25, "eval_samples": 872}`}))
	if err != nil {
		t.Fatal(err)
	}
	if e := b.Info.Eval; e == nil || e.Accuracy != 0.9123 || e.Samples != 872 {
		t.Fatalf("eval %+v", e)
	}
	if _, err := bundle.Open(bundletest.Pack(t, map[string]string{bundle.EvalFile: `{"eval_accuracy": 91.2}`})); !errors.Is(err, bundle.ErrInvalid) {
		t.Fatalf("an accuracy of 91.2: %v", err)
	}
}
