package model

import (
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// tokKind classifies what the tokenizer found.
type tokKind uint8

const (
	tokWord   tokKind = iota // letters/digits, apostrophes inside ("don't", "n't", "'s")
	tokSymbol                // an emoji, emoticon, "!" or "?": a unigram that breaks bigrams
	tokBreak                 // clause punctuation or an HTML tag: ends negation and bigrams
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// negators turn the polarity of what follows until the clause ends. They
// sit in a 256-slot table indexed by 8 bits of their hash, at a bit offset
// chosen at start-up so that no two collide: the check is one load and one
// compare, with no probing loop.
var negatorWords = []string{"not", "no", "never", "nothing", "nobody", "none", "neither", "nor",
	"cannot", "without", "hardly", "barely", "nowhere", "n't", "nt", "aint"}

var negatorShift, negatorTable = func() (uint, [256]uint64) {
	for shift := uint(0); shift <= 56; shift++ {
		var table [256]uint64
		ok := true
		for _, w := range negatorWords {
			h := hashLowerWord(w)
			slot := &table[(h>>shift)&255]
			if *slot != 0 {
				ok = false
				break
			}
			*slot = h
		}
		if ok {
			return shift, table
		}
	}
	panic("model: no collision-free negator table")
}()

// isContraction reports whether word, which has an apostrophe, is a
// negated contraction ("don't", "isn’t"); the other negators are found
// by their hash in negatorTable.
func isContraction(word string) bool {
	n := len(word)
	if n > 3 && word[n-1]|0x20 == 't' && word[n-2] == '\'' && word[n-3]|0x20 == 'n' {
		return true
	}
	return n > 5 && word[n-1]|0x20 == 't' && word[n-4:n-1] == "\u2019" && word[n-5]|0x20 == 'n'
}

// tokenizer walks a text and yields tokens without allocating. It accepts
// any bytes: invalid UTF-8 separates tokens like white space. After next
// returns true, the fields below describe the token: a hash of its
// lowercased form and its byte span in the input (for Explain).
type tokenizer struct {
	s string
	i int

	hash       uint64
	start, end int
	kind       tokKind
	negator    bool
}

// set records the current token and advances past it.
func (t *tokenizer) set(hash uint64, end int, kind tokKind) bool {
	t.hash, t.start, t.end, t.kind, t.negator = hash, t.i, end, kind, false
	t.i = end
	return true
}

func (t *tokenizer) next() bool {
	s := t.s
	for t.i < len(s) {
		c := s[t.i]
		if wordByte[c] != 0 {
			return t.word()
		}
		if c == ' ' {
			t.i++
			continue
		}
		if c < utf8.RuneSelf {
			switch {
			case c == '\'' && t.i+1 < len(s) && isASCIILetter(s[t.i+1]):
				return t.word() // "'s", "'re" as PTB tokenises them
			case c == '<':
				if end, ok := htmlTag(s, t.i); ok {
					return t.set(0, end, tokBreak)
				}
			case c == ':' || c == ';' || c == '=':
				if t.emoticon() {
					return true
				}
			case c == '!' || c == '?':
				return t.set(fnvByte(fnvOffset, c), t.i+1, tokSymbol)
			}
			if c == '.' || c == ',' || c == ';' || c == ':' {
				return t.set(0, t.i+1, tokBreak)
			}
			t.i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[t.i:])
		switch {
		case r == utf8.RuneError:
			t.i += size
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			return t.word()
		case isEmoji(r):
			return t.set(runeHash(fnvOffset, r), t.i+size, tokSymbol)
		default:
			t.i += size
		}
	}
	return false
}

// wordByte maps ASCII letters and digits to their lowercase form and every
// other byte to 0.
var wordByte = func() (tab [256]byte) {
	for c := '0'; c <= '9'; c++ {
		tab[c] = byte(c)
	}
	for c := 'a'; c <= 'z'; c++ {
		tab[c] = byte(c)
		tab[c-32] = byte(c)
	}
	return tab
}()

// wordHash hashes a word's lowercased bytes in 8-byte little-endian chunks
// counted from the word's start, so the SWAR fast path (8 ASCII bytes at a
// time) and the byte-at-a-time path (apostrophes, non-ASCII letters, the
// end of the text) give the same hash.
type wordHash struct {
	h    uint64
	acc  uint64 // bytes of the current partial chunk
	nacc uint   // how many
}

func fold(h, chunk uint64) uint64 {
	h = (h ^ chunk) * 0x9E3779B97F4A7C15
	return h ^ h>>29
}

func (w *wordHash) byte(b byte) {
	w.acc |= uint64(b) << (8 * w.nacc)
	w.nacc++
	if w.nacc == 8 {
		w.h = fold(w.h, w.acc)
		w.acc, w.nacc = 0, 0
	}
}

// hashLowerWord hashes an already lowercased word as word() would.
func hashLowerWord(s string) uint64 {
	w := wordHash{h: fnvOffset}
	for i := 0; i < len(s); i++ {
		w.byte(s[i])
	}
	return w.sum()
}

func (w *wordHash) sum() uint64 {
	if w.nacc > 0 {
		return fold(w.h, w.acc)
	}
	return w.h
}

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// asciiWordMask returns, for the 8 bytes in x, the high bit set in every
// byte that is not an ASCII letter or digit, and lower: x with its letters
// lowercased. Range tests work on 7-bit lanes, so no carry crosses a byte.
func asciiWordMask(x uint64) (nonWord, lower uint64) {
	t := x &^ high
	lt := t | 0x2020202020202020
	letter := (lt + (0x80-'a')*ones) &^ (lt + (0x7F-'z')*ones)
	digit := (t + (0x80-'0')*ones) &^ (t + (0x7F-'9')*ones)
	word := (letter | digit) &^ x & high
	return ^word & high, x | (letter&^x&high)>>2
}

// word consumes a word starting at t.i and hashes its lowercased form.
// Apostrophes (ASCII or U+2019) stay inside a word when a letter follows.
//
// Most words are ASCII letters ending at an ASCII byte that is no
// apostrophe, with 8 bytes of text after their start: word reads those 8
// bytes at a time, keeping the hash in registers, and leaves every other
// case to wordFrom.
func (t *tokenizer) word() bool {
	s, start := t.s, t.i
	h := uint64(fnvOffset)
	i := start
	for i+8 <= len(s) {
		nonWord, lower := asciiWordMask(load64(s[i:]))
		if nonWord == 0 {
			h = fold(h, lower)
			i += 8
			continue
		}
		n := uint(bits.TrailingZeros64(nonWord)) >> 3
		w := wordHash{h: h, acc: lower & (1<<(8*n) - 1), nacc: n}
		i += int(n)
		if c := s[i]; c != '\'' && c < utf8.RuneSelf {
			return t.setWord(w.sum(), start, i, s[start] == '\'')
		}
		return t.wordFrom(start, i, w)
	}
	return t.wordFrom(start, i, wordHash{h: h})
}

// load64 reads 8 bytes of b (at least 8 long) as a little-endian word.
func load64(b string) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// wordFrom goes on with a word that started at start, hashed into w up to
// i: in whole chunks while 8 ASCII word bytes follow, else byte by byte,
// through apostrophes and non-ASCII letters.
func (t *tokenizer) wordFrom(start, i int, w wordHash) bool {
	s := t.s
	apostrophe := s[start] == '\''
	for {
		// Whole chunks, while no partial chunk is pending.
		for w.nacc == 0 && i+8 <= len(s) {
			nonWord, lower := asciiWordMask(load64(s[i:]))
			if nonWord == 0 {
				w.h = fold(w.h, lower)
				i += 8
				continue
			}
			n := uint(bits.TrailingZeros64(nonWord)) >> 3
			w.acc, w.nacc = lower&(1<<(8*n)-1), n
			i += int(n)
			break
		}
		// Byte path: the tail of the text, or after a partial chunk.
		for i < len(s) {
			l := wordByte[s[i]]
			if l == 0 {
				break
			}
			w.byte(l)
			i++
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c == '\'' && isWordStart(s[i+1:]) {
			w.byte('\'')
			apostrophe = true
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2019' && isWordStart(s[i+size:]) {
			w.byte('\'')
			apostrophe = true
		} else if r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)) {
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], unicode.ToLower(r))
			for _, b := range buf[:n] {
				w.byte(b)
			}
		} else {
			break
		}
		i += size
	}
	return t.setWord(w.sum(), start, i, apostrophe)
}

// setWord records the word s[start:end] hashed to h and advances past it.
func (t *tokenizer) setWord(h uint64, start, end int, apostrophe bool) bool {
	t.hash, t.start, t.end, t.kind = h, start, end, tokWord
	t.i = end
	t.negator = negatorTable[(h>>negatorShift)&255] == h || apostrophe && isContraction(t.s[start:end])
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isWordStart(s string) bool {
	if s == "" {
		return false
	}
	if s[0] < utf8.RuneSelf {
		return isASCIILetter(s[0])
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLetter(r)
}

func runeHash(h uint64, r rune) uint64 {
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	for _, b := range buf[:n] {
		h = fnvByte(h, b)
	}
	return h
}

// htmlTag recognises a short tag such as <br />, <br/>, <i> or </p>
// starting at s[i] == '<' and returns the index after it.
func htmlTag(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && s[j] == '/' {
		j++
	}
	name := j
	for j < len(s) && j-i < 16 && isASCIILetter(s[j]) {
		j++
	}
	if j == name {
		return 0, false
	}
	for j < len(s) && j-i < 24 && (s[j] == ' ' || s[j] == '/') {
		j++
	}
	if j < len(s) && s[j] == '>' {
		return j + 1, true
	}
	return 0, false
}

// emoticon recognises :) :-) :( :D ;) =) :/ :P at t.i.
func (t *tokenizer) emoticon() bool {
	s := t.s
	j := t.i + 1
	if j < len(s) && s[j] == '-' {
		j++
	}
	if j >= len(s) {
		return false
	}
	var canon string
	switch s[j] {
	case ')', ']', 'D':
		canon = ":)"
	case '(', '[':
		canon = ":("
	case '/', '\\', '|':
		canon = ":/"
	case 'P', 'p':
		canon = ":p"
	default:
		return false
	}
	// ":/" inside a URL ("http://") is not an emoticon.
	if canon == ":/" && j+1 < len(s) && s[j+1] == '/' {
		return false
	}
	return t.set(fnvString(canon), j+1, tokSymbol)
}

// isEmoji reports pictographic runes worth a token of their own.
func isEmoji(r rune) bool {
	switch {
	case r >= 0x1F300 && r <= 0x1FAFF:
		return !(r >= 0x1F3FB && r <= 0x1F3FF) // skin-tone modifiers carry no sentiment
	case r >= 0x2600 && r <= 0x27BF:
		return true
	}
	return false
}

func toLower(r rune) rune {
	if r < utf8.RuneSelf {
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return r
	}
	return unicode.ToLower(r)
}
