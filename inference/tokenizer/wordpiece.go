package tokenizer

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// wordPiece is BERT's model: greedy longest-match-first over the
// vocabulary, pieces after the first spelled with a prefix ("##"); a word
// with a part no piece matches, or longer than maxChars characters, is
// the unknown token.
type wordPiece struct {
	vocab    map[string]int64
	unk      int64
	prefix   string
	maxChars int
}

func newWordPiece(raw json.RawMessage, vocab map[string]int64) (*wordPiece, error) {
	c := struct {
		UnkToken                string `json:"unk_token"`
		ContinuingSubwordPrefix string `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int    `json:"max_input_chars_per_word"`
	}{ContinuingSubwordPrefix: "##", MaxInputCharsPerWord: 100}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	unk, ok := vocab[c.UnkToken]
	if !ok {
		return nil, fmt.Errorf("WordPiece: unk_token %q is not in the vocab", c.UnkToken)
	}
	if c.MaxInputCharsPerWord <= 0 {
		return nil, fmt.Errorf("WordPiece: max_input_chars_per_word %d", c.MaxInputCharsPerWord)
	}
	return &wordPiece{vocab: vocab, unk: unk, prefix: c.ContinuingSubwordPrefix, maxChars: c.MaxInputCharsPerWord}, nil
}

func (w *wordPiece) tokenize(word string, ids []int64) []int64 {
	if word == "" {
		return ids
	}
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(ids, w.unk)
	}
	if id, ok := w.vocab[word]; ok {
		return append(ids, id)
	}
	mark := len(ids)
	buf := make([]byte, 0, len(w.prefix)+len(word))
	for start := 0; start < len(word); {
		end := len(word)
		found := false
		for start < end {
			buf = buf[:0]
			if start > 0 {
				buf = append(buf, w.prefix...)
			}
			buf = append(buf, word[start:end]...)
			if id, ok := w.vocab[string(buf)]; ok {
				ids = append(ids, id)
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return append(ids[:mark], w.unk)
		}
		start = end
	}
	return ids
}
