package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds the special tokens around one text's ids and gives
// each id its type id.
type postProcessor interface {
	process(ids []int64) (out, typeIDs []int64)
	// added is how many ids process adds.
	added() int
}

// templatePiece is one item of a single-sequence template: a special
// token's ids, or the text's (ids nil).
type templatePiece struct {
	ids    []int64
	typeID int64
}

// template is TemplateProcessing, and BERT's and RoBERTa's processors,
// which are templates [CLS] $A [SEP] and <s> $A </s>.
type template []templatePiece

func (t template) process(ids []int64) (out, typeIDs []int64) {
	n := len(ids) + t.added()
	out = make([]int64, 0, n)
	typeIDs = make([]int64, 0, n)
	for _, p := range t {
		src := p.ids
		if src == nil {
			src = ids
		}
		out = append(out, src...)
		for range src {
			typeIDs = append(typeIDs, p.typeID)
		}
	}
	return out, typeIDs
}

func (t template) added() int {
	n := 0
	for _, p := range t {
		n += len(p.ids)
	}
	return n
}

// nothingAdded is a post-processor that adds nothing (ByteLevel's, for
// ids).
type nothingAdded struct{}

func (nothingAdded) process(ids []int64) ([]int64, []int64) { return ids, make([]int64, len(ids)) }
func (nothingAdded) added() int                             { return 0 }

func newPostProcessor(raw json.RawMessage, vocab map[string]int64) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type   string `json:"type"`
		Single []struct {
			SpecialToken *struct {
				ID     string `json:"id"`
				TypeID int64  `json:"type_id"`
			}
			Sequence *struct {
				ID     string `json:"id"`
				TypeID int64  `json:"type_id"`
			}
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int64 `json:"ids"`
		} `json:"special_tokens"`
		Sep        []json.RawMessage `json:"sep"`
		Cls        []json.RawMessage `json:"cls"`
		Processors []json.RawMessage `json:"processors"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "TemplateProcessing":
		var t template
		for _, item := range c.Single {
			switch {
			case item.SpecialToken != nil:
				special, ok := c.SpecialTokens[item.SpecialToken.ID]
				if !ok || len(special.IDs) == 0 {
					return nil, fmt.Errorf("TemplateProcessing: special token %q has no ids", item.SpecialToken.ID)
				}
				t = append(t, templatePiece{ids: special.IDs, typeID: item.SpecialToken.TypeID})
			case item.Sequence != nil:
				t = append(t, templatePiece{typeID: item.Sequence.TypeID})
			}
		}
		return t, nil
	case "BertProcessing", "RobertaProcessing":
		cls, err := tokenIDPair(c.Cls)
		if err != nil {
			return nil, fmt.Errorf("%s: cls: %w", c.Type, err)
		}
		sep, err := tokenIDPair(c.Sep)
		if err != nil {
			return nil, fmt.Errorf("%s: sep: %w", c.Type, err)
		}
		return template{{ids: []int64{cls}}, {}, {ids: []int64{sep}}}, nil
	case "ByteLevel":
		return nothingAdded{}, nil
	case "Sequence":
		var last postProcessor
		for _, r := range c.Processors {
			p, err := newPostProcessor(r, vocab)
			if err != nil {
				return nil, err
			}
			if _, noop := p.(nothingAdded); p != nil && !noop {
				if last != nil {
					return nil, fmt.Errorf("type Sequence: more than one processor adds tokens")
				}
				last = p
			}
		}
		if last == nil {
			return nothingAdded{}, nil
		}
		return last, nil
	}
	return nil, fmt.Errorf("unsupported type %q", c.Type)
}

// tokenIDPair reads BERT's ["[SEP]", 102] and returns the id.
func tokenIDPair(pair []json.RawMessage) (int64, error) {
	if len(pair) != 2 {
		return 0, fmt.Errorf("want [token, id]")
	}
	var id int64
	if err := json.Unmarshal(pair[1], &id); err != nil || id < 0 {
		return 0, fmt.Errorf("want [token, id]: bad id")
	}
	return id, nil
}
