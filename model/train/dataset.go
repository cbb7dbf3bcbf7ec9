package train

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DataOptions says how to read a labelled data file.
type DataOptions struct {
	// Format is "tsv", "csv" or "jsonl"; empty picks it from the file
	// extension (a trailing .gz is decompressed).
	Format string
	// TextColumn names the text column; empty tries text, sentence, review.
	TextColumn string
	// LabelColumn names the label column; empty means "label".
	LabelColumn string
	// Labels are the names of labels 0 and 1; values may be given as 0/1,
	// as these names, or as their first three letters (neg/pos).
	Labels [2]string
}

// MaxLineSize bounds one record of a data file.
const MaxLineSize = 4 << 20

var defaultTextColumns = []string{"text", "sentence", "review"}

// Dataset is a file's examples and the digest of its bytes.
type Dataset struct {
	Examples []Example
	Digest   string // "sha256:<hex>" of the file as stored (compressed if .gz)
}

// ReadDataset reads labelled examples from path.
func ReadDataset(path string, opts DataOptions) (Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return Dataset{}, fmt.Errorf("cannot read data: %w", err)
	}
	defer f.Close()
	hash := sha256.New()
	var r io.Reader = io.TeeReader(f, hash)
	name := path
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return Dataset{}, fmt.Errorf("cannot read data %q: %w", path, err)
		}
		defer gz.Close()
		r, name = gz, strings.TrimSuffix(name, ".gz")
	}
	format := opts.Format
	if format == "" {
		format = strings.TrimPrefix(filepath.Ext(name), ".")
	}
	var examples []Example
	switch format {
	case "tsv", "csv":
		examples, err = readDelimited(r, format, opts)
	case "jsonl", "ndjson":
		examples, err = readJSONL(r, opts)
	default:
		err = fmt.Errorf("unknown format %q (want tsv, csv or jsonl; set it with --format)", format)
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("cannot read data %q: %w", path, err)
	}
	// Drain so the digest covers the whole file even if the parser stopped early.
	if _, err := io.Copy(io.Discard, f); err != nil {
		return Dataset{}, fmt.Errorf("cannot read data %q: %w", path, err)
	}
	if len(examples) == 0 {
		return Dataset{}, fmt.Errorf("cannot read data %q: no examples", path)
	}
	return Dataset{Examples: examples, Digest: "sha256:" + hex.EncodeToString(hash.Sum(nil))}, nil
}

func readDelimited(r io.Reader, format string, opts DataOptions) ([]Example, error) {
	var next func() ([]string, error)
	if format == "csv" {
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		next = cr.Read
	} else {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLineSize)
		next = func() ([]string, error) {
			if !sc.Scan() {
				if sc.Err() != nil {
					return nil, sc.Err()
				}
				return nil, io.EOF
			}
			return strings.Split(strings.TrimSuffix(sc.Text(), "\r"), "\t"), nil
		}
	}
	header, err := next()
	if err == io.EOF {
		return nil, errors.New("empty file: no header row")
	}
	if err != nil {
		return nil, err
	}
	textCol, labelCol, err := columns(header, opts)
	if err != nil {
		return nil, err
	}
	var examples []Example
	for line := 2; ; line++ {
		rec, err := next()
		if err == io.EOF {
			return examples, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) == 1 && rec[0] == "" {
			continue // blank line
		}
		if len(rec) <= max(textCol, labelCol) {
			return nil, fmt.Errorf("line %d: %d fields, header has %d", line, len(rec), len(header))
		}
		label, err := parseLabel(rec[labelCol], opts.Labels)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		examples = append(examples, Example{Text: strings.TrimSpace(rec[textCol]), Label: label})
	}
}

func columns(header []string, opts DataOptions) (text, label int, err error) {
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	text = -1
	if opts.TextColumn != "" {
		text = slices.Index(header, opts.TextColumn)
	} else {
		for _, c := range defaultTextColumns {
			if text = slices.Index(header, c); text >= 0 {
				break
			}
		}
	}
	labelName := opts.LabelColumn
	if labelName == "" {
		labelName = "label"
	}
	label = slices.Index(header, labelName)
	switch {
	case text < 0 && opts.TextColumn != "":
		return 0, 0, fmt.Errorf("no text column %q in header %q", opts.TextColumn, header)
	case text < 0:
		return 0, 0, fmt.Errorf("no text column (tried %q) in header %q; name it with --text-col", defaultTextColumns, header)
	case label < 0:
		return 0, 0, fmt.Errorf("no label column %q in header %q; name it with --label-col", labelName, header)
	}
	return text, label, nil
}

func parseLabel(v string, names [2]string) (int, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "0":
		return 0, nil
	case "1":
		return 1, nil
	}
	for i, n := range names {
		if n != "" && (strings.EqualFold(v, n) || len(n) > 3 && strings.EqualFold(v, n[:3])) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown label %q (want 0, 1, %q or %q)", v, names[0], names[1])
}

func readJSONL(r io.Reader, opts DataOptions) ([]Example, error) {
	labelName := opts.LabelColumn
	if labelName == "" {
		labelName = "label"
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineSize)
	var examples []Example
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		text, err := jsonText(rec, opts.TextColumn)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		raw, ok := rec[labelName]
		if !ok {
			return nil, fmt.Errorf("line %d: no %q field", line, labelName)
		}
		var lv any
		if err := json.Unmarshal(raw, &lv); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		var s string
		switch v := lv.(type) {
		case string:
			s = v
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			s = map[bool]string{false: "0", true: "1"}[v]
		default:
			return nil, fmt.Errorf("line %d: label %s is neither a string nor a number", line, raw)
		}
		label, err := parseLabel(s, opts.Labels)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		examples = append(examples, Example{Text: text, Label: label})
	}
	return examples, sc.Err()
}

func jsonText(rec map[string]json.RawMessage, col string) (string, error) {
	cands := defaultTextColumns
	if col != "" {
		cands = []string{col}
	}
	for _, c := range cands {
		if raw, ok := rec[c]; ok {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", fmt.Errorf("field %q is not a string", c)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("no text field (tried %q)", cands)
}

// HoldOut shuffles a copy of examples with a fixed seed and keeps the
// first share of them out: the same file and share always give the same
// split, so `sentctl eval` scores exactly what `sentctl train` held out.
func HoldOut(examples []Example, share float64) (train, held []Example) {
	ex := append([]Example(nil), examples...)
	rand.New(rand.NewPCG(1, 0x401d)).Shuffle(len(ex), func(i, j int) { ex[i], ex[j] = ex[j], ex[i] })
	n := int(float64(len(ex)) * share)
	return ex[n:], ex[:n]
}
