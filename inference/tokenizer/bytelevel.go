package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// byteLevel is GPT-2's pre-tokenizer: it cuts text with GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (hand-written below: Go's regexp has no look-ahead) and writes each
// word's UTF-8 bytes as the printable characters GPT-2's vocabulary is
// made of.
type byteLevel struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevel) split(text string, words []string) []string {
	if b.addPrefixSpace && !strings.HasPrefix(text, " ") {
		text = " " + text
	}
	if !b.useRegex {
		if text == "" {
			return words
		}
		return append(words, byteChars(text))
	}
	for len(text) > 0 {
		n := gpt2Match(text)
		words = append(words, byteChars(text[:n]))
		text = text[n:]
	}
	return words
}

// gpt2Match is the length in bytes of the pattern's match at the start of
// text, which is not empty.
func gpt2Match(text string) int {
	if n := contraction(text); n > 0 {
		return n
	}
	r, size := utf8.DecodeRuneInString(text)
	if r == ' ' && len(text) > 1 {
		next, nextSize := utf8.DecodeRuneInString(text[1:])
		if c := charClass(next); c != classSpace {
			return 1 + nextSize + runOf(text[1+nextSize:], c)
		}
	}
	if c := charClass(r); c != classSpace {
		return size + runOf(text[size:], c)
	}
	// \s+(?!\S), else \s+: a run of white space, less its last character
	// when that one is followed by something else and the run is longer
	// than one.
	n := size
	last := size
	for n < len(text) {
		r, s := utf8.DecodeRuneInString(text[n:])
		if !isSpace(r) {
			break
		}
		n += s
		last = s
	}
	if n < len(text) && n > last {
		return n - last
	}
	return n
}

// contraction matches 's 't 're 've 'm 'll 'd.
func contraction(text string) int {
	if len(text) < 2 || text[0] != '\'' {
		return 0
	}
	switch text[1] {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if len(text) > 2 && text[2] == 'e' {
			return 3
		}
	case 'l':
		if len(text) > 2 && text[2] == 'l' {
			return 3
		}
	}
	return 0
}

const (
	classSpace = iota
	classLetter
	classNumber
	classOther
)

func charClass(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'):
			return classLetter
		case '0' <= r && r <= '9':
			return classNumber
		case r == ' ' || ('\t' <= r && r <= '\r'):
			return classSpace
		}
		return classOther
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case isSpace(r):
		return classSpace
	}
	return classOther
}

// runOf is the length in bytes of the run of class c at the start of text.
func runOf(text string, c int) int {
	n := 0
	for n < len(text) {
		r, s := utf8.DecodeRuneInString(text[n:])
		if charClass(r) != c {
			break
		}
		n += s
	}
	return n
}

// byteChars writes s's bytes as GPT-2's byte characters.
func byteChars(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteToChar[s[i]])
	}
	return sb.String()
}

// byteToChar maps each byte to a printable character: the printable
// Latin-1 bytes to themselves, the others to U+0100 onwards, in order.
var byteToChar = func() [256]rune {
	var table [256]rune
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			table[b] = rune(b)
		} else {
			table[b] = 256 + n
			n++
		}
	}
	return table
}()
