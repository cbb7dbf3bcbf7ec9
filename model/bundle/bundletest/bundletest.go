// Package bundletest makes small ONNX bundles for tests: the tiny model
// (tiny.py: input_ids and attention_mask in, logits [batch, 3] out, with
// logits [s, -s, s/2+1] for s the sum of a text's ids), a WordPiece
// tokenizer whose words have known ids, and three labels.
package bundletest

import (
	"bytes"
	_ "embed"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sentimentpro/sentiment/model/bundle"
	"google.golang.org/protobuf/encoding/protowire"
)

// Model is tiny.onnx.
//
//go:embed tiny.onnx
var Model []byte

// Words have these ids: [CLS] 2, [SEP] 3, "good" 4, "bad" 5, "film" 6.
const Tokenizer = `{
  "added_tokens": [{"id": 0, "content": "[PAD]", "special": true, "normalized": false},
                   {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
                   {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
                   {"id": 3, "content": "[SEP]", "special": true, "normalized": false}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "good": 4, "bad": 5, "film": 6}}
}`

// Config names three labels.
const Config = `{"architectures": ["TinyForSequenceClassification"], "max_position_embeddings": 64,
  "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
  "label2id": {"negative": 0, "neutral": 1, "positive": 2}}`

// Files is the tiny bundle's files, with edits applied: a file replaced,
// or, for an empty value, left out.
func Files(edits map[string]string) map[string]string {
	files := map[string]string{
		bundle.ModelFile:           string(Model),
		bundle.ConfigFile:          Config,
		bundle.TokenizerFile:       Tokenizer,
		bundle.TokenizerConfigFile: `{"model_max_length": 512, "do_lower_case": true, "pad_token": "[PAD]"}`,
		"vocab.txt":                "[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\nfilm\n",
	}
	for name, content := range edits {
		if content == "" {
			delete(files, name)
		} else {
			files[name] = content
		}
	}
	return files
}

// Dir writes the tiny bundle's files, with edits, to a new directory.
func Dir(t testing.TB, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range Files(edits) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Pack is the tiny bundle, with edits, packed.
func Pack(t testing.TB, edits map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.PackDir(Dir(t, edits), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Probabilities is the tiny model's answer for a text whose ids (special
// tokens included) sum to s.
func Probabilities(s float64) []float32 {
	logits := []float64{s, -s, s/2 + 1}
	hi := max(logits[0], logits[1], logits[2])
	var sum float64
	for _, l := range logits {
		sum += exp(l - hi)
	}
	out := make([]float32, 3)
	for i, l := range logits {
		out[i] = float32(exp(l-hi) / sum)
	}
	return out
}

func exp(x float64) float64 { return math.Exp(x) }

// Graph builds an ONNX ModelProto with only a graph's inputs and outputs:
// enough for the checks, which never run it.
func Graph(inputs, outputs []bundle.Tensor) string {
	valueInfo := func(t bundle.Tensor) []byte {
		var shape []byte
		for _, d := range t.Shape {
			var dim []byte
			if d >= 0 {
				dim = protowire.AppendTag(dim, 1, protowire.VarintType)
				dim = protowire.AppendVarint(dim, uint64(d))
			} else {
				dim = protowire.AppendTag(dim, 2, protowire.BytesType)
				dim = protowire.AppendString(dim, "batch")
			}
			shape = protowire.AppendTag(shape, 1, protowire.BytesType)
			shape = protowire.AppendBytes(shape, dim)
		}
		var tensor []byte
		tensor = protowire.AppendTag(tensor, 1, protowire.VarintType)
		tensor = protowire.AppendVarint(tensor, uint64(t.Type))
		tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
		tensor = protowire.AppendBytes(tensor, shape)
		var typ []byte
		typ = protowire.AppendTag(typ, 1, protowire.BytesType)
		typ = protowire.AppendBytes(typ, tensor)
		var vi []byte
		vi = protowire.AppendTag(vi, 1, protowire.BytesType)
		vi = protowire.AppendString(vi, t.Name)
		vi = protowire.AppendTag(vi, 2, protowire.BytesType)
		return protowire.AppendBytes(vi, typ)
	}
	var g []byte
	for _, in := range inputs {
		g = protowire.AppendTag(g, 11, protowire.BytesType)
		g = protowire.AppendBytes(g, valueInfo(in))
	}
	for _, out := range outputs {
		g = protowire.AppendTag(g, 12, protowire.BytesType)
		g = protowire.AppendBytes(g, valueInfo(out))
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	return string(protowire.AppendBytes(m, g))
}
