package bundle

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

	"google.golang.org/protobuf/encoding/protowire"
)

// tinyModel is the ONNX binding's test model: input_ids and
// attention_mask in, logits [batch, 3] out.
const tinyModel = "bundletest/tiny.onnx"

const tinyConfig = `{"architectures": ["TinyForSequenceClassification"], "max_position_embeddings": 64,
  "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
  "label2id": {"negative": 0, "neutral": 1, "positive": 2}}`

const tinyTokenizer = `{
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

// bundleDir writes a bundle directory: the tiny model with three labels,
// with files replaced (or, for an empty value, left out) by edits.
func bundleDir(t *testing.T, edits map[string]string) string {
	t.Helper()
	model, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		ModelFile:           string(model),
		ConfigFile:          tinyConfig,
		TokenizerFile:       tinyTokenizer,
		TokenizerConfigFile: `{"model_max_length": 512, "do_lower_case": true, "pad_token": "[PAD]"}`,
		"vocab.txt":         "[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood\nbad\nfilm\n",
	}
	for name, content := range edits {
		files[name] = content
	}
	dir := t.TempDir()
	for name, content := range files {
		if content == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func pack(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := PackDir(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPackIsDeterministic(t *testing.T) {
	dir := bundleDir(t, nil)
	first := pack(t, dir)
	for _, name := range []string{ConfigFile, ModelFile} {
		if err := os.Chtimes(filepath.Join(dir, name), time.Now(), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, ConfigFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".DS_Store"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if second := pack(t, dir); !bytes.Equal(first, second) {
		t.Fatal("the same files packed twice (new times, modes, a hidden file) made different bytes")
	}
	if !Sniff(first) {
		t.Error("Sniff does not know a bundle")
	}
	if Sniff([]byte("SAPM\x01\x00\x00\x00")) {
		t.Error("Sniff takes the built-in format for a bundle")
	}
}

func TestOpenAndInspect(t *testing.T) {
	data := pack(t, bundleDir(t, nil))
	b, err := Open(data)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []Info{b.Info, info} {
		if !slices.Equal(got.Labels, []string{"negative", "neutral", "positive"}) || got.MaxLength != 64 ||
			!slices.Equal(got.Inputs, []string{InputIDs, AttentionMask}) || got.Tokenizer != "WordPiece" ||
			got.Opset != 14 || got.Name != "TinyForSequenceClassification" || len(got.Files) != 5 {
			t.Errorf("info = %+v", got)
		}
	}
	model, _ := os.ReadFile(tinyModel)
	if !bytes.Equal(b.Model, model) {
		t.Error("Open's model bytes are not model.onnx")
	}
	if ids := b.Tokenizer.Encode("Good film").IDs; !slices.Equal(ids, []int64{2, 4, 6, 3}) {
		t.Errorf("tokenizer ids %v", ids)
	}
	if b.Tokenizer.MaxLength() != 64 {
		t.Errorf("tokenizer truncates at %d, want the bundle's 64", b.Tokenizer.MaxLength())
	}
}

// graph builds an ONNX ModelProto with only a graph's inputs and outputs:
// enough for the checks, which never run it.
func graph(inputs, outputs []Tensor) string {
	valueInfo := func(t Tensor) []byte {
		var shape []byte
		for _, d := range t.Shape {
			var dim []byte
			if d >= 0 {
				dim = protowire.AppendTag(dim, dimValue, protowire.VarintType)
				dim = protowire.AppendVarint(dim, uint64(d))
			} else {
				dim = protowire.AppendTag(dim, 2, protowire.BytesType)
				dim = protowire.AppendString(dim, "batch")
			}
			shape = protowire.AppendTag(shape, shapeDim, protowire.BytesType)
			shape = protowire.AppendBytes(shape, dim)
		}
		var tensor []byte
		tensor = protowire.AppendTag(tensor, tensorElemType, protowire.VarintType)
		tensor = protowire.AppendVarint(tensor, uint64(t.Type))
		tensor = protowire.AppendTag(tensor, tensorShape, protowire.BytesType)
		tensor = protowire.AppendBytes(tensor, shape)
		var typ []byte
		typ = protowire.AppendTag(typ, typeTensorType, protowire.BytesType)
		typ = protowire.AppendBytes(typ, tensor)
		var vi []byte
		vi = protowire.AppendTag(vi, valueInfoName, protowire.BytesType)
		vi = protowire.AppendString(vi, t.Name)
		vi = protowire.AppendTag(vi, valueInfoType, protowire.BytesType)
		return protowire.AppendBytes(vi, typ)
	}
	var g []byte
	for _, in := range inputs {
		g = protowire.AppendTag(g, graphInput, protowire.BytesType)
		g = protowire.AppendBytes(g, valueInfo(in))
	}
	for _, out := range outputs {
		g = protowire.AppendTag(g, graphOutput, protowire.BytesType)
		g = protowire.AppendBytes(g, valueInfo(out))
	}
	var m []byte
	m = protowire.AppendTag(m, modelIRVersion, protowire.VarintType)
	m = protowire.AppendVarint(m, 8)
	m = protowire.AppendTag(m, modelGraph, protowire.BytesType)
	return string(protowire.AppendBytes(m, g))
}

var (
	ids    = Tensor{Name: InputIDs, Type: TypeInt64, Shape: []int64{-1, -1}}
	mask   = Tensor{Name: AttentionMask, Type: TypeInt64, Shape: []int64{-1, -1}}
	logits = Tensor{Name: OutputLogits, Type: TypeFloat, Shape: []int64{-1, 3}}
)

func TestRefusals(t *testing.T) {
	f := func(name string, edits map[string]string, wantInMessage string) {
		t.Helper()
		data := pack(t, bundleDir(t, edits))
		_, errOpen := Open(data)
		_, errInspect := Inspect(bytes.NewReader(data), int64(len(data)))
		for _, err := range []error{errOpen, errInspect} {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), wantInMessage) {
				t.Errorf("%s: err = %v, want ErrInvalid naming %q", name, err, wantInMessage)
			}
		}
	}
	f("no model", map[string]string{ModelFile: ""}, "no model.onnx")
	f("no tokenizer", map[string]string{TokenizerFile: ""}, "no tokenizer.json")
	f("no config", map[string]string{ConfigFile: ""}, "no config.json")
	f("corrupt model", map[string]string{ModelFile: "\xff\xff\xff\xff garbage"}, "model.onnx: not a valid ONNX model")
	f("no input_ids", map[string]string{ModelFile: graph([]Tensor{mask}, []Tensor{logits})}, `no input "input_ids"`)
	f("unknown input", map[string]string{ModelFile: graph([]Tensor{ids, {Name: "pixel_values", Type: TypeFloat}}, []Tensor{logits})}, `input "pixel_values"`)
	f("float input", map[string]string{ModelFile: graph([]Tensor{{Name: InputIDs, Type: TypeFloat, Shape: []int64{-1, -1}}}, []Tensor{logits})}, "want int64")
	f("3-D logits", map[string]string{ModelFile: graph([]Tensor{ids}, []Tensor{{Name: OutputLogits, Type: TypeFloat, Shape: []int64{-1, -1, 3}}})}, "logits is 3-D")
	f("no logits", map[string]string{ModelFile: graph([]Tensor{ids}, []Tensor{{Name: "last_hidden_state", Type: TypeFloat}})}, `no output "logits" (outputs: "last_hidden_state")`)
	f("labels do not match", map[string]string{ConfigFile: `{"id2label": {"0": "neg", "1": "pos"}, "max_position_embeddings": 64}`}, "logits has 3 columns but config.json's id2label names 2 labels")
	f("label2id disagrees", map[string]string{ConfigFile: strings.Replace(tinyConfig, `"neutral": 1, "positive": 2`, `"neutral": 2, "positive": 1`, 1)}, "label2id gives")
	f("id2label gap", map[string]string{ConfigFile: `{"id2label": {"0": "a", "2": "b", "3": "c"}, "max_position_embeddings": 64}`}, `id2label key "`)
	f("one label", map[string]string{ConfigFile: `{"id2label": {"0": "a"}}`}, "names 1 labels")
	f("bad tokenizer", map[string]string{TokenizerFile: `{"model": {"type": "Unigram", "vocab": [["a", 0]]}}`}, "tokenizer.json")
	f("no length", map[string]string{ConfigFile: strings.Replace(tinyConfig, `"max_position_embeddings": 64,`, ``, 1),
		TokenizerConfigFile: `{"model_max_length": 1000000000000000019884624838656}`}, "no sequence length")
	f("pad token unknown", map[string]string{TokenizerConfigFile: `{"pad_token": "<pad>"}`}, `pad_token "<pad>"`)
}

func TestRefusesBadArchives(t *testing.T) {
	good := pack(t, bundleDir(t, nil))
	f := func(name string, data []byte, maxModel int64, wantInMessage string) {
		t.Helper()
		_, err := Inspect(bytes.NewReader(data), maxModel)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), wantInMessage) {
			t.Errorf("%s: Inspect err = %v, want ErrInvalid naming %q", name, err, wantInMessage)
		}
		if maxModel >= int64(len(data)) {
			if _, err := Open(data); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: Open err = %v, want ErrInvalid", name, err)
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
	f("out of order", archive(header("tokenizer.json", 2), header("config.json", 2)), 1<<30, "out of order")
	f("repeated", archive(header("config.json", 2), header("config.json", 2)), 1<<30, "out of order or repeated")
	f("directory", archive(&tar.Header{Typeflag: tar.TypeDir, Name: "onnx/", Mode: 0o755}), 1<<30, "not a regular file")
	f("symlink", archive(&tar.Header{Typeflag: tar.TypeSymlink, Name: "model.onnx", Linkname: "/etc/passwd"}), 1<<30, "not a regular file")
	f("path", archive(header("../config.json", 2)), 1<<30, `file name "../config.json"`)
	f("nested", archive(header("onnx/model.onnx", 2)), 1<<30, "no directories")
	pax := header("config.json", 2)
	pax.Format, pax.PAXRecords = tar.FormatPAX, map[string]string{"comment": "hidden"}
	f("PAX", archive(pax), 1<<30, "plain ustar")
}

func TestPackRefusesSubdirectories(t *testing.T) {
	dir := bundleDir(t, nil)
	if err := os.Mkdir(filepath.Join(dir, "onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := PackDir(dir, new(bytes.Buffer))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
}
