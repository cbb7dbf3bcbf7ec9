package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before it is split into words.
type normalizer interface {
	normalize(text string) string
}

func newNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c struct {
		Type               string            `json:"type"`
		CleanText          bool              `json:"clean_text"`
		HandleChineseChars bool              `json:"handle_chinese_chars"`
		StripAccents       *bool             `json:"strip_accents"`
		Lowercase          bool              `json:"lowercase"`
		Normalizers        []json.RawMessage `json:"normalizers"`
		Prepend            string            `json:"prepend"`
		StripLeft          bool              `json:"strip_left"`
		StripRight         bool              `json:"strip_right"`
		Pattern            struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "BertNormalizer":
		strip := c.Lowercase
		if c.StripAccents != nil {
			strip = *c.StripAccents
		}
		return bertNormalizer{clean: c.CleanText, chinese: c.HandleChineseChars, stripAccents: strip, lowercase: c.Lowercase}, nil
	case "Lowercase":
		return funcNormalizer(lowercase), nil
	case "StripAccents":
		return funcNormalizer(stripMarks), nil
	case "NFC":
		return funcNormalizer(norm.NFC.String), nil
	case "NFD":
		return funcNormalizer(norm.NFD.String), nil
	case "NFKC":
		return funcNormalizer(norm.NFKC.String), nil
	case "NFKD":
		return funcNormalizer(norm.NFKD.String), nil
	case "Prepend":
		return funcNormalizer(func(s string) string { return c.Prepend + s }), nil
	case "Strip":
		left, right := c.StripLeft, c.StripRight
		return funcNormalizer(func(s string) string {
			if left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}), nil
	case "Replace":
		if c.Pattern.String == nil {
			return nil, fmt.Errorf("type Replace: only a String pattern is supported")
		}
		old, repl := *c.Pattern.String, c.Content
		if old == "" {
			return nil, fmt.Errorf("type Replace: empty pattern")
		}
		return funcNormalizer(func(s string) string { return strings.ReplaceAll(s, old, repl) }), nil
	case "Sequence":
		var seq sequenceNormalizer
		for _, r := range c.Normalizers {
			n, err := newNormalizer(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("unsupported type %q", c.Type)
}

type funcNormalizer func(string) string

func (f funcNormalizer) normalize(s string) string { return f(s) }

type sequenceNormalizer []normalizer

func (seq sequenceNormalizer) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// bertNormalizer is BERT's: drop control characters and turn white space
// into spaces, put spaces around CJK ideographs, strip accents, lowercase;
// in that order, as the Rust crate does.
type bertNormalizer struct {
	clean, chinese, stripAccents, lowercase bool
}

func (b bertNormalizer) normalize(s string) string {
	if isPlainASCII(s) {
		return b.normalizeASCII(s)
	}
	if b.clean || b.chinese {
		s = b.cleanAndSpace(s)
	}
	if b.stripAccents {
		s = stripNonspacingMarks(s)
	}
	if b.lowercase {
		s = lowercase(s)
	}
	return s
}

// normalizeASCII is normalize for printable ASCII and white space, the
// common case, without the Unicode tables.
func (b bertNormalizer) normalizeASCII(s string) string {
	if !b.lowercase && !(b.clean && hasControlASCII(s)) {
		return s
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case b.clean && (c == '\t' || c == '\n' || c == '\r'):
			c = ' '
		case b.clean && (c < 0x20 || c == 0x7f):
			continue
		case b.lowercase && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return string(buf)
}

func (b bertNormalizer) cleanAndSpace(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for _, r := range s {
		if b.clean {
			if r == 0 || r == utf8.RuneError || isControl(r) {
				continue
			}
			if unicode.IsSpace(r) {
				r = ' '
			}
		}
		if b.chinese && isChineseChar(r) {
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// isControl is the BERT normalizer's control character: category Cc, Cf,
// Co, Cs or Cn (unassigned), but for tab, newline and carriage return,
// which are white space.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.Is(unicode.C, r) ||
		!unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isChineseChar is the CJK Unified Ideographs blocks BERT splits around.
func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// stripNonspacingMarks decomposes s (NFD) and drops the nonspacing marks:
// é becomes e.
func stripNonspacingMarks(s string) string {
	s = norm.NFD.String(s)
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// stripMarks is the StripAccents normalizer: every mark (M) goes, without
// decomposing first.
func stripMarks(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.M, r) {
			return -1
		}
		return r
	}, s)
}

// lowercase maps each character to its lowercase form, one character at a
// time as Rust's char::to_lowercase does (so a final Σ becomes σ), with the
// one unconditional multi-character mapping: İ becomes i and a combining
// dot above.
func lowercase(s string) string {
	if isPlainASCII(s) {
		return strings.ToLower(s)
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if r == 'İ' {
			sb.WriteString("i\u0307")
			continue
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return sb.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func hasControlASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
