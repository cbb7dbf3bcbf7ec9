package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/sentimentpro/sentiment/model/bundle"
)

// Artifact layout (docs/MODEL_FORMAT.md), all integers little-endian:
//
//	offset  size  field
//	0       4     magic "SAPM"
//	4       2     format version (1)
//	6       2     reserved, 0
//	8       4     header length H (1 ≤ H ≤ MaxHeaderSize)
//	12      H     header: JSON Metadata, strictly decoded
//	12+H    4·N   weights: float32, N = 2^hash_bits
//	…       4     bias: float32
//	end-32  32    SHA-256 of every byte before it
const (
	Magic         = "SAPM"
	FormatVersion = 1
	MaxHeaderSize = 1 << 20
	MinHashBits   = 8
	MaxHashBits   = 26
	prefixSize    = 12
	checksumSize  = sha256.Size
	// MaxArtifactSize bounds what Load accepts: the largest table plus header.
	MaxArtifactSize = prefixSize + MaxHeaderSize + 4<<MaxHashBits + 4 + checksumSize
)

// Errors returned by Load; each wraps into a message naming the problem.
var (
	ErrTruncated          = errors.New("artifact truncated")
	ErrTooLarge           = errors.New("artifact too large")
	ErrBadMagic           = errors.New("not a model artifact (bad magic)")
	ErrUnsupportedVersion = errors.New("unsupported artifact format version")
	ErrChecksum           = errors.New("artifact checksum mismatch")
	ErrBadHeader          = errors.New("invalid artifact header")
	ErrSizeMismatch       = errors.New("artifact size does not match its header")
	ErrBadWeights         = errors.New("artifact weights are not finite")
)

// Metadata is the artifact header: what the model is and how it was made.
type Metadata struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Labels      []string `json:"labels"`
	Features    Features `json:"features"`
	Training    Training `json:"training"`
	Metrics     *Metrics `json:"metrics,omitempty"`
	// Format is FormatONNX for an ONNX bundle (model/bundle), whose
	// Bundle says what it holds; empty for this package's own format.
	Format string       `json:"format,omitempty"`
	Bundle *bundle.Info `json:"bundle,omitempty"`
}

// FormatONNX marks an ONNX bundle's metadata.
const FormatONNX = "onnx"

// BundleMetadata is the registry's description of a checked ONNX bundle.
func BundleMetadata(info bundle.Info) Metadata {
	name := info.Name
	if name == "" {
		name = "onnx"
	}
	if len(name) > 128 {
		name = name[:128]
	}
	md := Metadata{Name: name, Labels: info.Labels, Format: FormatONNX, Bundle: &info}
	if e := info.Eval; e != nil {
		// The team's own evaluation: what the quality gate compares.
		md.Metrics = &Metrics{Accuracy: e.Accuracy, Examples: e.Samples}
	}
	return md
}

// Training records how the weights were produced; with the same data and
// these settings the trainer reproduces the artifact bit for bit.
type Training struct {
	DataDigest   string  `json:"data_digest"` // "sha256:<hex>" of the training file(s)
	Examples     int     `json:"examples"`
	Epochs       int     `json:"epochs"`
	LearningRate float64 `json:"learning_rate"`
	L2           float64 `json:"l2"`
	Seed         uint64  `json:"seed"`
	// Holdout is the share of the data kept out of training for Metrics.
	Holdout float64 `json:"holdout,omitempty"`
	// NBAlpha, MinCount and Lexicon are the trainer's TrainConfig fields
	// of those names (Lexicon: its LexiconID), when set.
	// Data lists the training files, when there are several, as
	// "<digest>,holdout=<share>"; DataDigest is then the SHA-256 of their
	// digests, one per line.
	Data    []string `json:"data,omitempty"`
	NBAlpha float64  `json:"nb_alpha,omitempty"`
	// BalanceClasses: each example weighed by the inverse of its label's
	// share.
	BalanceClasses bool   `json:"balance_classes,omitempty"`
	MinCount       int    `json:"min_count,omitempty"`
	Lexicon        string `json:"lexicon,omitempty"`
}

// Metrics is an evaluation of the model on a labelled set.
type Metrics struct {
	DataDigest string         `json:"data_digest"`
	Examples   int            `json:"examples"`
	Accuracy   float64        `json:"accuracy"`
	ECE        float64        `json:"ece,omitempty"` // expected calibration error (Evaluation.ECE)
	Classes    []ClassMetrics `json:"classes"`
}

// ClassMetrics is precision/recall/F1 for one label.
type ClassMetrics struct {
	Label     string  `json:"label"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// Validate checks the metadata a model needs: a name, two distinct labels
// and features within the format's limits.
func (md Metadata) Validate() error {
	f := md.Features
	switch {
	case md.Format != "" || md.Bundle != nil:
		return fmt.Errorf("format %q is not this artifact format's", md.Format)
	case md.Name == "" || len(md.Name) > 128:
		return fmt.Errorf("name length %d outside 1..128", len(md.Name))
	case len(md.Labels) != 2:
		return fmt.Errorf("%d labels, want 2", len(md.Labels))
	case md.Labels[0] == "" || md.Labels[1] == "" || md.Labels[0] == md.Labels[1]:
		return fmt.Errorf("labels %q must be two distinct non-empty names", md.Labels)
	case len(md.Labels[0]) > 64 || len(md.Labels[1]) > 64:
		return errors.New("label names longer than 64 bytes")
	case f.HashBits < MinHashBits || f.HashBits > MaxHashBits:
		return fmt.Errorf("hash_bits %d outside %d..%d", f.HashBits, MinHashBits, MaxHashBits)
	case f.NGrams < 1 || f.NGrams > 3:
		return fmt.Errorf("ngrams %d outside 1..3", f.NGrams)
	case f.Norm != NormNone && f.Norm != NormSqrt:
		return fmt.Errorf("norm %q is neither %q nor %q", f.Norm, NormNone, NormSqrt)
	}
	return nil
}

// Encode serialises the model into the artifact format.
func (m *Model) Encode() ([]byte, error) {
	header, err := json.Marshal(m.meta)
	if err != nil {
		return nil, fmt.Errorf("cannot encode model header: %w", err)
	}
	if len(header) > MaxHeaderSize {
		return nil, fmt.Errorf("cannot encode model: header of %d bytes exceeds %d", len(header), MaxHeaderSize)
	}
	var buf bytes.Buffer
	buf.Grow(prefixSize + len(header) + 4*len(m.weights) + 4 + checksumSize)
	buf.WriteString(Magic)
	binary.Write(&buf, binary.LittleEndian, uint16(FormatVersion))
	binary.Write(&buf, binary.LittleEndian, uint16(0))
	binary.Write(&buf, binary.LittleEndian, uint32(len(header)))
	buf.Write(header)
	var w [4]byte
	for _, x := range m.weights {
		binary.LittleEndian.PutUint32(w[:], math.Float32bits(x))
		buf.Write(w[:])
	}
	binary.LittleEndian.PutUint32(w[:], math.Float32bits(m.bias))
	buf.Write(w[:])
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return buf.Bytes(), nil
}

// Load validates an artifact and returns the model. Every length and field
// is checked before it is used, so a truncated, corrupted or hostile file
// yields an error, never a panic or an allocation sized by the file.
func Load(data []byte) (*Model, error) {
	if len(data) > MaxArtifactSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxArtifactSize)
	}
	if len(data) < prefixSize+checksumSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(data))
	}
	if string(data[:4]) != Magic {
		return nil, fmt.Errorf("%w: %q", ErrBadMagic, data[:4])
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != FormatVersion {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrUnsupportedVersion, v, FormatVersion)
	}
	hlen := uint64(binary.LittleEndian.Uint32(data[8:]))
	if hlen == 0 || hlen > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d outside 1..%d", ErrBadHeader, hlen, MaxHeaderSize)
	}
	if prefixSize+hlen+checksumSize > uint64(len(data)) {
		return nil, fmt.Errorf("%w: header length %d exceeds the file", ErrTruncated, hlen)
	}
	body := data[:len(data)-checksumSize]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:], data[len(body):]) {
		return nil, fmt.Errorf("%w: content hashes to %x", ErrChecksum, sum[:8])
	}
	var md Metadata
	if err := decodeStrict(data[prefixSize:prefixSize+hlen], &md); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	n := uint64(1) << md.Features.HashBits
	if want := prefixSize + hlen + 4*n + 4 + checksumSize; want != uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d bytes, header implies %d", ErrSizeMismatch, len(data), want)
	}
	raw := data[prefixSize+hlen : len(body)]
	weights := newWeights(int(n))
	for i := range weights {
		weights[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	bias := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*n:]))
	for i, x := range weights {
		if !finite(x) {
			return nil, fmt.Errorf("%w: weight %d is %v", ErrBadWeights, i, x)
		}
	}
	if !finite(bias) {
		return nil, fmt.Errorf("%w: bias is %v", ErrBadWeights, bias)
	}
	return &Model{
		meta:     md,
		features: md.Features,
		weights:  weights,
		bias:     bias,
		digest:   Digest(data),
		labels:   []string{md.Labels[0], md.Labels[1]},
	}, nil
}

// LoadFile reads and loads an artifact from disk.
func LoadFile(path string) (*Model, error) {
	data, err := ReadFileLimited(path, MaxArtifactSize)
	if err != nil {
		return nil, fmt.Errorf("cannot load model %q: %w", path, err)
	}
	m, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("cannot load model %q: %w", path, err)
	}
	return m, nil
}

// ReadFileLimited reads a file, refusing one larger than limit before
// reading it into memory.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// Digest returns "sha256:<hex>" of data: the identity of an artifact in the
// registry, its ETag and what signatures cover.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseDigest checks a "sha256:<64 hex>" string and returns the raw bytes.
func ParseDigest(d string) ([]byte, error) {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 {
		return nil, fmt.Errorf("digest %q is not of the form sha256:<64 hex digits>", d)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || strings.ToLower(hexPart) != hexPart {
		return nil, fmt.Errorf("digest %q is not lowercase hex", d)
	}
	return b, nil
}

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
