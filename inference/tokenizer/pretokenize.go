package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer cuts text into the words the model tokenizes one at a
// time, appending them to words.
type preTokenizer interface {
	split(text string, words []string) []string
}

func newPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return wholeText{}, nil
	}
	var c struct {
		Type             string            `json:"type"`
		AddPrefixSpace   bool              `json:"add_prefix_space"`
		UseRegex         *bool             `json:"use_regex"`
		PreTokenizers    []json.RawMessage `json:"pretokenizers"`
		IndividualDigits bool              `json:"individual_digits"`
		Behavior         string            `json:"behavior"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "BertPreTokenizer":
		return bertPreTokenizer{}, nil
	case "ByteLevel":
		return byteLevel{addPrefixSpace: c.AddPrefixSpace, useRegex: c.UseRegex == nil || *c.UseRegex}, nil
	case "Whitespace":
		return whitespace{}, nil
	case "WhitespaceSplit":
		return whitespaceSplit{}, nil
	case "Punctuation":
		if c.Behavior != "" && c.Behavior != "Isolated" {
			return nil, fmt.Errorf("type Punctuation: unsupported behavior %q", c.Behavior)
		}
		return punctuation{}, nil
	case "Digits":
		return digits{individual: c.IndividualDigits}, nil
	case "Sequence":
		var seq sequencePreTokenizer
		for _, r := range c.PreTokenizers {
			p, err := newPreTokenizer(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	}
	return nil, fmt.Errorf("unsupported type %q", c.Type)
}

// wholeText keeps the text as one word (no pre-tokenizer).
type wholeText struct{}

func (wholeText) split(text string, words []string) []string {
	if text == "" {
		return words
	}
	return append(words, text)
}

type sequencePreTokenizer []preTokenizer

func (seq sequencePreTokenizer) split(text string, words []string) []string {
	pieces := []string{text}
	for _, p := range seq {
		var next []string
		for _, piece := range pieces {
			next = p.split(piece, next)
		}
		pieces = next
	}
	return append(words, pieces...)
}

// bertPreTokenizer splits on white space, which goes, and around each
// punctuation character, which stays a word of its own.
type bertPreTokenizer struct{}

func (bertPreTokenizer) split(text string, words []string) []string {
	start := -1
	for i, r := range text {
		switch {
		case isSpace(r):
			if start >= 0 {
				words = append(words, text[start:i])
				start = -1
			}
		case isBertPunctuation(r):
			if start >= 0 {
				words = append(words, text[start:i])
				start = -1
			}
			words = append(words, text[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		words = append(words, text[start:])
	}
	return words
}

// isSpace is white space as Rust's char::is_whitespace sees it.
func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	return unicode.IsSpace(r)
}

// isBertPunctuation is ASCII punctuation (symbols such as $ and ^
// included) or any Unicode punctuation (P).
func isBertPunctuation(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// whitespaceSplit splits on white space only.
type whitespaceSplit struct{}

func (whitespaceSplit) split(text string, words []string) []string {
	return append(words, strings.FieldsFunc(text, isSpace)...)
}

// whitespace is the pattern \w+|[^\w\s]+: runs of word characters and runs
// of other characters that are not space.
type whitespace struct{}

func (whitespace) split(text string, words []string) []string {
	return splitRuns(text, words, func(r rune) int {
		switch {
		case isWordChar(r):
			return 1
		case isSpace(r):
			return 0
		}
		return 2
	})
}

// punctuation isolates each punctuation character.
type punctuation struct{}

func (punctuation) split(text string, words []string) []string {
	start := 0
	for i, r := range text {
		if isBertPunctuation(r) {
			if start < i {
				words = append(words, text[start:i])
			}
			words = append(words, text[i:i+utf8.RuneLen(r)])
			start = i + utf8.RuneLen(r)
		}
	}
	if start < len(text) {
		words = append(words, text[start:])
	}
	return words
}

// digits isolates runs of digits, or each digit.
type digits struct{ individual bool }

func (d digits) split(text string, words []string) []string {
	start, inDigits := 0, false
	for i, r := range text {
		isDigit := unicode.IsDigit(r)
		if i > start && (isDigit != inDigits || (isDigit && d.individual)) {
			words = append(words, text[start:i])
			start = i
		}
		inDigits = isDigit
	}
	if start < len(text) {
		words = append(words, text[start:])
	}
	return words
}

// splitRuns appends the maximal runs of characters of the same class,
// dropping class 0.
func splitRuns(text string, words []string, class func(rune) int) []string {
	start, cur := 0, -1
	for i, r := range text {
		c := class(r)
		if c != cur {
			if cur > 0 {
				words = append(words, text[start:i])
			}
			start, cur = i, c
		}
	}
	if cur > 0 {
		words = append(words, text[start:])
	}
	return words
}

// isWordChar is a character of the regular expression class \w:
// alphabetic, marks, decimal digits and connector punctuation.
func isWordChar(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r) || unicode.In(r, unicode.M, unicode.Nd, unicode.Nl, unicode.Pc,
		unicode.Other_Alphabetic, unicode.Join_Control)
}
