package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens: special
// tokens such as [CLS] and <s>, and any others a team added. They are
// matched in the text before the model sees it.
type addedToken struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// normalizedMatch says whether the token is matched in normalized text
// (true) or in the text as sent: the file's flag, else true for a token
// that is not special.
func (a addedToken) normalizedMatch() bool {
	if a.Normalized != nil {
		return *a.Normalized
	}
	return !a.Special
}

// addedVocab finds added tokens in text, longest match first.
type addedVocab struct {
	raw        *trie // tokens matched in the text as sent
	normalized *trie // tokens matched after normalization, by normalized form
}

func newAddedVocab(tokens []addedToken, n normalizer) (*addedVocab, error) {
	a := &addedVocab{raw: newTrie(), normalized: newTrie()}
	for _, tok := range tokens {
		if tok.Content == "" {
			return nil, fmt.Errorf("token %d has no content", tok.ID)
		}
		if tok.ID < 0 {
			return nil, fmt.Errorf("token %q has id %d", tok.Content, tok.ID)
		}
		if tok.normalizedMatch() && n != nil {
			a.normalized.add(n.normalize(tok.Content), tok)
		} else {
			a.raw.add(tok.Content, tok)
		}
	}
	return a, nil
}

// section is a piece of text: an added token (id ≥ 0) or text between
// them (id -1).
type section struct {
	text string
	id   int64
}

// split cuts text at the tokens of t, leftmost-longest, and strips white
// space beside a token that asks for it.
func (a *addedVocab) split(text string, t *trie) []section {
	if t.empty() {
		return []section{{text: text, id: -1}}
	}
	var out []section
	start := 0
	for i := 0; i < len(text); {
		tok, n := t.longest(text[i:])
		if n == 0 {
			i++
			continue
		}
		if tok.SingleWord && !standsAlone(text, i, i+n) {
			i += n // the match is text, as in the Rust crate
			continue
		}
		before := text[start:i]
		if tok.LStrip {
			before = strings.TrimRightFunc(before, unicode.IsSpace)
		}
		if before != "" {
			out = append(out, section{text: before, id: -1})
		}
		out = append(out, section{text: tok.Content, id: tok.ID})
		i += n
		if tok.RStrip {
			i += len(text[i:]) - len(strings.TrimLeftFunc(text[i:], unicode.IsSpace))
		}
		start = i
	}
	if start < len(text) {
		out = append(out, section{text: text[start:], id: -1})
	}
	return out
}

// standsAlone says text[start:end] has no word character (\w) right
// before or after it.
func standsAlone(text string, start, end int) bool {
	before, _ := utf8.DecodeLastRuneInString(text[:start])
	after, _ := utf8.DecodeRuneInString(text[end:])
	return (start == 0 || !isWordChar(before)) && (end == len(text) || !isWordChar(after))
}

// trie is a byte trie of added tokens.
type trie struct {
	next  map[byte]*trie
	token *addedToken
}

func newTrie() *trie { return &trie{} }

func (t *trie) empty() bool { return len(t.next) == 0 }

func (t *trie) add(key string, tok addedToken) {
	node := t
	for i := 0; i < len(key); i++ {
		if node.next == nil {
			node.next = map[byte]*trie{}
		}
		child := node.next[key[i]]
		if child == nil {
			child = &trie{}
			node.next[key[i]] = child
		}
		node = child
	}
	node.token = &tok
}

// longest is the longest token text starts with and its length in bytes,
// or n 0 if none.
func (t *trie) longest(text string) (tok addedToken, n int) {
	node := t
	for i := 0; i < len(text); i++ {
		node = node.next[text[i]]
		if node == nil {
			break
		}
		if node.token != nil {
			tok, n = *node.token, i+1
		}
	}
	return tok, n
}
