// Package bundle is the ONNX model bundle: the directory a Hugging Face
// ONNX export writes (model.onnx, tokenizer.json, config.json,
// tokenizer_config.json, and such files as special_tokens_map.json and
// vocab.txt), stored as one deterministic tar archive so that one sha256,
// and one signature over it, cover every file.
//
// The archive is plain ustar: top-level regular files only, sorted by
// name, mode 0644, owner 0, time 0. Pack writes it; Inspect reads one as it
// streams past (the registry, on upload) and Open reads one held in memory
// (the edge). Both check what a model needs before anything runs it: the
// labels (config.json's id2label), a tokenizer this product implements, a
// sequence length, and a graph with int64 [batch, sequence] inputs found
// by name and float [batch, labels] logits.
package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/inference/tokenizer"
)

// The files a bundle must have.
const (
	ModelFile           = "model.onnx"
	TokenizerFile       = "tokenizer.json"
	ConfigFile          = "config.json"
	TokenizerConfigFile = "tokenizer_config.json"
)

// Limits on what a bundle may hold.
const (
	MaxFiles     = 64
	MaxJSONSize  = 64 << 20 // any file but model.onnx
	MaxLabels    = 1024
	MaxLabelLen  = 256
	MaxSequence  = 8192 // tokens
	maxNameBytes = 100  // a ustar name
)

// Input names a graph may take; input_ids is required.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	TokenTypeIDs  = "token_type_ids"
	OutputLogits  = "logits"
)

// ErrInvalid is wrapped by every error about a bundle's content.
var ErrInvalid = errors.New("invalid model bundle")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Sniff says whether an artifact's first bytes are a bundle's (a ustar
// archive) rather than the built-in model format.
func Sniff(prefix []byte) bool {
	return len(prefix) >= 263 && string(prefix[257:263]) == "ustar\x00"
}

// Info is what a valid bundle holds, as the registry records it and the
// edge serves it.
type Info struct {
	// Name is config.json's _name_or_path, else its first architecture.
	Name   string   `json:"name,omitempty"`
	Labels []string `json:"labels"`
	// MaxLength is the most tokens a text is cut to, special tokens
	// included: the least of tokenizer.json's truncation,
	// tokenizer_config.json's model_max_length and config.json's
	// max_position_embeddings.
	MaxLength int `json:"max_length"`
	// Tokenizer is the tokenizer model: "WordPiece" or "BPE".
	Tokenizer string `json:"tokenizer"`
	// PadID pads a batch's shorter texts (tokenizer_config.json's
	// pad_token; 0 if it names none).
	PadID  int64      `json:"pad_id"`
	Inputs []string   `json:"inputs"` // the graph's inputs, in its order
	Opset  int64      `json:"opset"`
	Files  []FileInfo `json:"files"`
	// Eval is the bundle's own evaluation, from eval_results.json as
	// Hugging Face's Trainer writes it, when there is one.
	Eval *Eval `json:"eval,omitempty"`
}

// Eval is what eval_results.json says.
type Eval struct {
	Accuracy float64 `json:"eval_accuracy"`
	Samples  int     `json:"eval_samples,omitempty"`
}

// EvalFile is where a bundle records its evaluation, as Hugging Face's
// Trainer.save_metrics("eval", ...) writes it.
const EvalFile = "eval_results.json"

// FileInfo is one file of a bundle.
type FileInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// PackDir writes the files of dir, as a bundle, to w. Hidden files are
// left out; a subdirectory or a file that is not regular is an error.
func PackDir(dir string, w io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cannot read bundle directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if !e.Type().IsRegular() {
			return invalid("%s is not a regular file: a bundle is the flat directory an ONNX export writes", filepath.Join(dir, name))
		}
		if err := checkName(name); err != nil {
			return err
		}
		names = append(names, name)
	}
	if len(names) > MaxFiles {
		return invalid("%d files, at most %d", len(names), MaxFiles)
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := packFile(tw, filepath.Join(dir, name), name); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("cannot write bundle: %w", err)
	}
	return nil
}

func packFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := tw.WriteHeader(header(name, st.Size())); err != nil {
		return fmt.Errorf("cannot write bundle: %w", err)
	}
	if n, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("cannot pack %s: %w", path, err)
	} else if n != st.Size() {
		return fmt.Errorf("cannot pack %s: it changed while it was read", path)
	}
	return nil
}

// header is the one tar header a bundle's files have: only the name and
// size vary, so the same files always make the same bytes.
func header(name string, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
		ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR,
	}
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameBytes || strings.HasPrefix(name, ".") {
		return invalid("file name %q: 1-%d bytes, not hidden", name, maxNameBytes)
	}
	for _, c := range name {
		if !(c == '.' || c == '-' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return invalid("file name %q: letters, digits, '.', '-' and '_' only, no directories", name)
		}
	}
	return nil
}

// contents is what validation gathers from a bundle's members.
type contents struct {
	files    []FileInfo
	size     int64             // what the members take in a ustar archive, with its end
	json     map[string][]byte // every member but model.onnx
	graph    *Graph
	previous string
}

// member checks one archive member's header and reads it: model.onnx as
// a stream through ReadGraph, the others whole.
func (c *contents) member(h *tar.Header, r io.Reader, maxModel int64) error {
	if h.Typeflag != tar.TypeReg {
		return invalid("%q is not a regular file", h.Name)
	}
	// Plain ustar only: PAX and GNU extensions (sparse files, long names)
	// would let the bytes read differ from the bytes stored.
	if h.Format != tar.FormatUSTAR || len(h.PAXRecords) > 0 {
		return invalid("%q has a %v header; a bundle is plain ustar, as sentctl pack writes it", h.Name, h.Format)
	}
	if err := checkName(h.Name); err != nil {
		return err
	}
	if c.previous != "" && h.Name <= c.previous {
		return invalid("files out of order or repeated at %q: pack bundles with sentctl pack", h.Name)
	}
	c.previous = h.Name
	if len(c.files) == MaxFiles {
		return invalid("more than %d files", MaxFiles)
	}
	c.files = append(c.files, FileInfo{Name: h.Name, Size: h.Size})
	c.size += blockSize + (h.Size+blockSize-1)/blockSize*blockSize
	if h.Name == ModelFile {
		if h.Size > maxModel {
			return invalid("%s is %d bytes, the limit is %d", ModelFile, h.Size, maxModel)
		}
		g, err := ReadGraph(r, h.Size)
		if err != nil {
			return invalid("%s: %v", ModelFile, err)
		}
		c.graph = &g
		return nil
	}
	if h.Size > MaxJSONSize {
		return invalid("%s is %d bytes, the limit is %d", h.Name, h.Size, MaxJSONSize)
	}
	data, err := io.ReadAll(io.LimitReader(r, h.Size))
	if err != nil || int64(len(data)) != h.Size {
		return invalid("%s is truncated", h.Name)
	}
	c.json[h.Name] = data
	return nil
}

const blockSize = 512 // tar's

func archiveError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("truncated: %v", err)
	}
	return invalid("not a bundle archive: %v", err)
}

// checkEnd wants the archive's end (two zero blocks) within its n bytes:
// without it the upload was cut short.
func (c *contents) checkEnd(n int64) error {
	if n < c.size+2*blockSize {
		return invalid("truncated: the archive ends without its end marker")
	}
	return nil
}

// Inspect reads a bundle from r to its end and checks it; maxModel caps
// model.onnx. It holds every file but model.onnx, which streams past.
func Inspect(r io.Reader, maxModel int64) (Info, error) {
	c := &contents{json: map[string][]byte{}}
	cr := &countingReader{r: r}
	r = cr
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Info{}, archiveError(err)
		}
		if err := c.member(h, tr, maxModel); err != nil {
			return Info{}, err
		}
	}
	// What follows the archive's end is padding: zeros only.
	if _, err := io.Copy(io.Discard, &nonZero{r: r}); err != nil {
		return Info{}, invalid("%v", err)
	}
	if err := c.checkEnd(cr.n); err != nil {
		return Info{}, err
	}
	return c.validate()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// nonZero fails on a byte that is not zero.
type nonZero struct{ r io.Reader }

func (z *nonZero) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if bytes.ContainsFunc(p[:n], func(r rune) bool { return r != 0 }) {
		return n, errors.New("data after the archive's end")
	}
	return n, err
}

// Bundle is a valid bundle held in memory.
type Bundle struct {
	Info  Info
	Model []byte // model.onnx, a slice of the bundle's bytes
	// Tokenizer is tokenizer.json loaded, truncating to Info.MaxLength.
	Tokenizer *tokenizer.Tokenizer
}

// Open checks a bundle held in memory and returns its parts; the model's
// bytes are not copied.
func Open(data []byte) (*Bundle, error) {
	c := &contents{json: map[string][]byte{}}
	br := bytes.NewReader(data)
	tr := tar.NewReader(br)
	var model []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, archiveError(err)
		}
		if h.Name == ModelFile && h.Typeflag == tar.TypeReg {
			start := br.Size() - int64(br.Len())
			if h.Size < 0 || start+h.Size > int64(len(data)) {
				return nil, invalid("%s is truncated", ModelFile)
			}
			model = data[start : start+h.Size]
		}
		if err := c.member(h, tr, int64(len(data))); err != nil {
			return nil, err
		}
	}
	if bytes.ContainsFunc(data[br.Size()-int64(br.Len()):], func(r rune) bool { return r != 0 }) {
		return nil, invalid("data after the archive's end")
	}
	if err := c.checkEnd(int64(len(data))); err != nil {
		return nil, err
	}
	info, err := c.validate()
	if err != nil {
		return nil, err
	}
	tok, err := loadTokenizer(c.json[TokenizerFile], info.MaxLength)
	if err != nil {
		return nil, err
	}
	return &Bundle{Info: info, Model: model, Tokenizer: tok}, nil
}

func loadTokenizer(data []byte, maxLength int) (*tokenizer.Tokenizer, error) {
	tok, err := tokenizer.Load(data)
	if err != nil {
		return nil, invalid("%s: %v", TokenizerFile, err)
	}
	tok.SetMaxLength(maxLength)
	return tok, nil
}

// validate checks the files together once all are read.
func (c *contents) validate() (Info, error) {
	for _, name := range []string{ConfigFile, ModelFile, TokenizerFile} {
		if _, ok := c.json[name]; !ok && (name != ModelFile || c.graph == nil) {
			return Info{}, invalid("no %s: a bundle is the directory an ONNX export writes, with %s, %s and %s",
				name, ModelFile, TokenizerFile, ConfigFile)
		}
	}
	info := Info{Files: c.files, Opset: c.graph.Opset}
	cfg, err := readConfig(c.json[ConfigFile])
	if err != nil {
		return Info{}, err
	}
	info.Name, info.Labels = cfg.name(), cfg.labels
	tokCfg, err := readTokenizerConfig(c.json[TokenizerConfigFile])
	if err != nil {
		return Info{}, err
	}
	tok, err := loadTokenizer(c.json[TokenizerFile], 0)
	if err != nil {
		return Info{}, err
	}
	info.Tokenizer = tokenizerModel(c.json[TokenizerFile])
	if info.MaxLength, err = maxLength(tok, tokCfg, cfg); err != nil {
		return Info{}, err
	}
	if tokCfg.padToken != "" {
		id, ok := tok.TokenID(tokCfg.padToken)
		if !ok {
			return Info{}, invalid("%s: pad_token %q is not in the vocabulary", TokenizerConfigFile, tokCfg.padToken)
		}
		info.PadID = id
	}
	if info.Inputs, err = checkGraph(*c.graph, len(info.Labels)); err != nil {
		return Info{}, err
	}
	if info.Eval, err = readEval(c.json[EvalFile]); err != nil {
		return Info{}, err
	}
	return info, nil
}

// readEval reads eval_results.json, if the bundle has one with an
// accuracy.
func readEval(data []byte) (*Eval, error) {
	if data == nil {
		return nil, nil
	}
	var raw struct {
		Accuracy *float64 `json:"eval_accuracy"`
		Samples  int      `json:"eval_samples"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, invalid("%s: %v", EvalFile, err)
	}
	if raw.Accuracy == nil {
		return nil, nil
	}
	if a := *raw.Accuracy; a < 0 || a > 1 || math.IsNaN(a) {
		return nil, invalid("%s: eval_accuracy %v is not between 0 and 1", EvalFile, a)
	}
	return &Eval{Accuracy: *raw.Accuracy, Samples: max(raw.Samples, 0)}, nil
}

// config is what config.json says that serving needs.
type config struct {
	labels       []string
	nameOrPath   string
	architecture string
	maxPositions int
}

func (c config) name() string {
	if c.nameOrPath != "" {
		return c.nameOrPath
	}
	return c.architecture
}

func readConfig(data []byte) (config, error) {
	var raw struct {
		ID2Label      map[string]string `json:"id2label"`
		Label2ID      map[string]int    `json:"label2id"`
		NameOrPath    string            `json:"_name_or_path"`
		Architectures []string          `json:"architectures"`
		MaxPositions  int               `json:"max_position_embeddings"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return config{}, invalid("%s: %v", ConfigFile, err)
	}
	n := len(raw.ID2Label)
	if n < 2 || n > MaxLabels {
		return config{}, invalid("%s: id2label names %d labels; a classifier has 2 to %d", ConfigFile, n, MaxLabels)
	}
	c := config{labels: make([]string, n), nameOrPath: raw.NameOrPath, maxPositions: raw.MaxPositions}
	if len(raw.Architectures) > 0 {
		c.architecture = raw.Architectures[0]
	}
	seen := map[string]bool{}
	for key, label := range raw.ID2Label {
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= n || strconv.Itoa(i) != key {
			return config{}, invalid("%s: id2label key %q: the keys are the ids 0 to %d", ConfigFile, key, n-1)
		}
		if label == "" || len(label) > MaxLabelLen || seen[label] {
			return config{}, invalid("%s: label %q: labels are distinct, 1-%d bytes", ConfigFile, label, MaxLabelLen)
		}
		seen[label] = true
		c.labels[i] = label
	}
	if raw.Label2ID != nil {
		for label, id := range raw.Label2ID {
			if id < 0 || id >= n || c.labels[id] != label {
				return config{}, invalid("%s: label2id gives %q id %d, which id2label does not", ConfigFile, label, id)
			}
		}
		if len(raw.Label2ID) != n {
			return config{}, invalid("%s: label2id has %d labels, id2label %d", ConfigFile, len(raw.Label2ID), n)
		}
	}
	return c, nil
}

// tokenizerConfig is what tokenizer_config.json says that serving needs.
type tokenizerConfig struct {
	modelMaxLength float64 // 0: not said
	padToken       string
}

func readTokenizerConfig(data []byte) (tokenizerConfig, error) {
	if data == nil {
		return tokenizerConfig{}, nil
	}
	var raw struct {
		ModelMaxLength *float64         `json:"model_max_length"`
		PadToken       *json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return tokenizerConfig{}, invalid("%s: %v", TokenizerConfigFile, err)
	}
	var c tokenizerConfig
	if raw.ModelMaxLength != nil {
		c.modelMaxLength = *raw.ModelMaxLength
	}
	if raw.PadToken != nil {
		// A string, or an AddedToken object with its "content".
		var s string
		var obj struct {
			Content string `json:"content"`
		}
		switch {
		case json.Unmarshal(*raw.PadToken, &s) == nil:
			c.padToken = s
		case json.Unmarshal(*raw.PadToken, &obj) == nil:
			c.padToken = obj.Content
		}
	}
	return c, nil
}

// maxLength is the least of the limits the files set. Transformers writes
// model_max_length 1e30 when the model sets none: that is not a limit.
func maxLength(tok *tokenizer.Tokenizer, tc tokenizerConfig, c config) (int, error) {
	n := 0
	consider := func(v float64) {
		if v > 0 && v <= MaxSequence && (n == 0 || int(v) < n) {
			n = int(v)
		}
	}
	consider(float64(tok.MaxLength()))
	consider(tc.modelMaxLength)
	consider(float64(c.maxPositions))
	if n == 0 {
		return 0, invalid("no sequence length up to %d: set model_max_length in %s or max_position_embeddings in %s",
			MaxSequence, TokenizerConfigFile, ConfigFile)
	}
	if n <= tok.SpecialTokens() {
		return 0, invalid("sequence length %d leaves no room for text beside %d special tokens", n, tok.SpecialTokens())
	}
	return n, nil
}

func tokenizerModel(data []byte) string {
	var raw struct {
		Model struct {
			Type string `json:"type"`
		} `json:"model"`
	}
	_ = json.Unmarshal(data, &raw)
	return raw.Model.Type
}

// checkGraph wants the inputs a text classifier takes, by name, and
// logits with one column per label. It returns the input names.
func checkGraph(g Graph, labels int) ([]string, error) {
	var names []string
	hasIDs := false
	for _, in := range g.Inputs {
		switch in.Name {
		case InputIDs, AttentionMask, TokenTypeIDs:
		default:
			return nil, invalid("%s: input %q is not one this server feeds (%s, %s, %s)", ModelFile, in.Name, InputIDs, AttentionMask, TokenTypeIDs)
		}
		if in.Type != TypeInt64 {
			return nil, invalid("%s: input %q has element type %d, want int64 (%d)", ModelFile, in.Name, in.Type, TypeInt64)
		}
		if in.Shape != nil && len(in.Shape) != 2 {
			return nil, invalid("%s: input %q is %d-D, want [batch, sequence]", ModelFile, in.Name, len(in.Shape))
		}
		hasIDs = hasIDs || in.Name == InputIDs
		names = append(names, in.Name)
	}
	if !hasIDs {
		return nil, invalid("%s: no input %q (inputs: %s)", ModelFile, InputIDs, tensorNames(g.Inputs))
	}
	i := slices.IndexFunc(g.Outputs, func(t Tensor) bool { return t.Name == OutputLogits })
	if i < 0 {
		return nil, invalid("%s: no output %q (outputs: %s)", ModelFile, OutputLogits, tensorNames(g.Outputs))
	}
	out := g.Outputs[i]
	if out.Type != TypeFloat {
		return nil, invalid("%s: %s has element type %d, want float (%d)", ModelFile, OutputLogits, out.Type, TypeFloat)
	}
	if out.Shape != nil && len(out.Shape) != 2 {
		return nil, invalid("%s: %s is %d-D, want [batch, labels]: a sequence classifier's", ModelFile, OutputLogits, len(out.Shape))
	}
	if out.Shape != nil && out.Shape[1] >= 0 && out.Shape[1] != int64(labels) {
		return nil, invalid("%s: %s has %d columns but %s's id2label names %d labels", ModelFile, OutputLogits, out.Shape[1], ConfigFile, labels)
	}
	return names, nil
}

func tensorNames(ts []Tensor) string {
	var names []string
	for _, t := range ts {
		names = append(names, strconv.Quote(t.Name))
	}
	if names == nil {
		return "none"
	}
	return strings.Join(names, ", ")
}

// ReadPath returns the bytes of the artifact at path: a file as it is
// (either format, at most limit bytes), a bundle directory packed.
func ReadPath(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read model: %w", err)
	}
	if st.IsDir() {
		var buf bytes.Buffer
		if err := PackDir(path, &buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("cannot read model %s: %d bytes, limit %d", path, st.Size(), limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read model: %w", err)
	}
	return data, nil
}
