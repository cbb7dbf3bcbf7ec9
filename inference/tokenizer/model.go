package tokenizer

import (
	"encoding/json"
	"fmt"
)

// model splits one pre-tokenized word into vocabulary ids, appending them
// to ids.
type model interface {
	tokenize(word string, ids []int64) []int64
}

// newModel reads tokenizer.json's model. The vocabulary it returns holds
// the added tokens too, as the model's lookups do.
func newModel(raw json.RawMessage, added []addedToken) (model, map[string]int64, error) {
	var c struct {
		Type  string `json:"type"`
		Vocab json.RawMessage
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, err
	}
	var vocab map[string]int64
	if err := json.Unmarshal(c.Vocab, &vocab); err != nil {
		return nil, nil, fmt.Errorf("vocab: want an object of token to id: %w", err)
	}
	if len(vocab) == 0 {
		return nil, nil, fmt.Errorf("empty vocab")
	}
	for token, id := range vocab {
		if id < 0 {
			return nil, nil, fmt.Errorf("vocab: token %q has id %d", token, id)
		}
	}
	for _, a := range added {
		vocab[a.Content] = a.ID
	}
	switch c.Type {
	case "WordPiece":
		m, err := newWordPiece(raw, vocab)
		return m, vocab, err
	case "BPE":
		m, err := newBPE(raw, vocab)
		return m, vocab, err
	}
	return nil, nil, fmt.Errorf("unsupported type %q (WordPiece and BPE are)", c.Type)
}
