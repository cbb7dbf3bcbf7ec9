// Package tokenizer turns text into the token ids a transformer takes,
// from a Hugging Face tokenizer.json: WordPiece (BERT, DistilBERT) and
// BPE, byte-level (GPT-2, RoBERTa) or not, with the normalizers,
// pre-tokenizers, added tokens, post-processors and truncation the file
// describes.
//
// Where implementations disagree, it follows the Rust crate tokenizers,
// the one Hugging Face's fast tokenizers and so most trained models use.
// The pure-JS port (npm @huggingface/tokenizers) agrees with it on ids for
// the texts the tests compare; docs/MODELS.md lists the few places it does
// not (lowercasing a word-final Σ, CJK outside the Basic Multilingual
// Plane, U+0085 and U+FEFF as white space).
//
// A Tokenizer is immutable and safe for concurrent use.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error Load returns for a file it cannot
// use: malformed, or a component this package does not implement.
var ErrInvalid = errors.New("invalid tokenizer.json")

// Tokenizer encodes text as the ids of one tokenizer.json.
type Tokenizer struct {
	added      *addedVocab
	normalizer normalizer // nil: none
	pre        preTokenizer
	model      model
	post       postProcessor // nil: none
	vocab      map[string]int64
	vocabSize  int

	maxLength    int // 0: no truncation
	truncateLeft bool
}

// Encoding is one text's ids, ready for a model.
type Encoding struct {
	IDs     []int64
	TypeIDs []int64
	// Truncated says the text had more tokens than the maximum length and
	// the ones past it were dropped.
	Truncated bool
}

// file is the part of tokenizer.json this package reads.
type file struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Truncation    *struct {
		MaxLength int    `json:"max_length"`
		Direction string `json:"direction"`
	} `json:"truncation"`
}

// Load reads a tokenizer.json. Truncation is the file's own, if it sets
// one; SetMaxLength changes it.
func Load(data []byte) (*Tokenizer, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if isNull(f.Model) {
		return nil, fmt.Errorf("%w: no model", ErrInvalid)
	}
	t := &Tokenizer{}
	var err error
	if t.model, t.vocab, err = newModel(f.Model, f.AddedTokens); err != nil {
		return nil, fmt.Errorf("%w: model: %w", ErrInvalid, err)
	}
	for _, id := range t.vocab {
		t.vocabSize = max(t.vocabSize, int(id)+1)
	}
	if t.normalizer, err = newNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("%w: normalizer: %w", ErrInvalid, err)
	}
	if t.pre, err = newPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%w: pre_tokenizer: %w", ErrInvalid, err)
	}
	if t.post, err = newPostProcessor(f.PostProcessor, t.vocab); err != nil {
		return nil, fmt.Errorf("%w: post_processor: %w", ErrInvalid, err)
	}
	if t.added, err = newAddedVocab(f.AddedTokens, t.normalizer); err != nil {
		return nil, fmt.Errorf("%w: added_tokens: %w", ErrInvalid, err)
	}
	if err := t.checkSpecialIDs(); err != nil {
		return nil, fmt.Errorf("%w: post_processor: %w", ErrInvalid, err)
	}
	if tr := f.Truncation; tr != nil {
		if tr.MaxLength < 0 {
			return nil, fmt.Errorf("%w: truncation: max_length %d", ErrInvalid, tr.MaxLength)
		}
		t.maxLength = tr.MaxLength
		t.truncateLeft = tr.Direction == "Left"
	}
	return t, nil
}

// checkSpecialIDs refuses special tokens whose ids the vocabulary does
// not have: a model would be fed ids past its embedding table.
func (t *Tokenizer) checkSpecialIDs() error {
	tmpl, ok := t.post.(template)
	if !ok {
		return nil
	}
	size := int64(t.VocabSize())
	for _, p := range tmpl {
		for _, id := range p.ids {
			if id < 0 || id >= size {
				return fmt.Errorf("special token id %d is outside the vocabulary of %d", id, size)
			}
		}
	}
	return nil
}

// SetMaxLength sets the most ids an encoding holds, special tokens
// included; 0 turns truncation off. Call it before the Tokenizer is
// shared.
func (t *Tokenizer) SetMaxLength(n int) { t.maxLength = n }

// MaxLength is the most ids an encoding holds; 0 is no limit.
func (t *Tokenizer) MaxLength() int { return t.maxLength }

// SpecialTokens is how many ids the post-processor adds to one text.
func (t *Tokenizer) SpecialTokens() int {
	if t.post == nil {
		return 0
	}
	return t.post.added()
}

// TokenID is the id of token in the vocabulary, added tokens included.
func (t *Tokenizer) TokenID(token string) (int64, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// VocabSize is the number of distinct ids: one more than the largest.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// Encode tokenizes one text, adds the special tokens and truncates to the
// maximum length. Invalid UTF-8 is read as U+FFFD, as a JSON decoder
// would.
func (t *Tokenizer) Encode(text string) Encoding {
	text = strings.ToValidUTF8(text, "\uFFFD")
	ids := t.tokenize(text, nil)
	enc := Encoding{}
	if t.maxLength > 0 {
		keep := max(t.maxLength-t.SpecialTokens(), 0)
		if len(ids) > keep {
			enc.Truncated = true
			if t.truncateLeft {
				ids = ids[len(ids)-keep:]
			} else {
				ids = ids[:keep]
			}
		}
	}
	if t.post == nil {
		enc.IDs = ids
		enc.TypeIDs = make([]int64, len(ids))
		return enc
	}
	enc.IDs, enc.TypeIDs = t.post.process(ids)
	return enc
}

// tokenize appends the ids of text, before post-processing, to ids: the
// text is cut at added tokens, and each other part normalized,
// pre-tokenized and split into the model's tokens.
func (t *Tokenizer) tokenize(text string, ids []int64) []int64 {
	for _, section := range t.added.split(text, t.added.raw) {
		if section.id >= 0 {
			ids = append(ids, section.id)
			continue
		}
		normalized := section.text
		if t.normalizer != nil {
			normalized = t.normalizer.normalize(normalized)
		}
		for _, sub := range t.added.split(normalized, t.added.normalized) {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			for _, word := range t.pre.split(sub.text, nil) {
				ids = t.model.tokenize(word, ids)
			}
		}
	}
	return ids
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}
