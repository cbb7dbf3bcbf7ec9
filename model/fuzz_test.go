package model

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzTokenize feeds arbitrary bytes through the feature pipeline: no
// panic, spans inside the text, indexes inside the table, and Predict and
// Explain agree on what they see.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"", "Not good.", "I don\u2019t like it <br />", "\xff\xfe\xc3", ":-) :( =D",
		"caf\u00e9 \U0001F60D\U0001F3FD!!", strings.Repeat("abcdefgh", 20), "n't 's 'x '", "<<<>>> </ >"} {
		f.Add(s)
	}
	m := testModel(f)
	f.Fuzz(func(t *testing.T, text string) {
		feats := m.features
		it := feats.iter(text)
		var idx [8]uint32
		var spans [8]span
		total := 0
		for {
			k := it.fill(idx[:], spans[:])
			if k == 0 {
				break
			}
			for i := range k {
				if idx[i] >= 1<<feats.HashBits {
					t.Fatalf("index %d outside the table", idx[i])
				}
				sp := spans[i]
				if sp.start < 0 || sp.end > len(text) || sp.start >= sp.end {
					t.Fatalf("span %+v outside %d bytes", sp, len(text))
				}
			}
			total += k
		}
		// Every word's hash, whichever path read it (8 bytes at a time or
		// byte by byte), is the byte-by-byte hash of its lowercased form.
		for tok := (tokenizer{s: text}); tok.next(); {
			if tok.kind == tokWord {
				if want := hashLowerWord(lowerWord(text[tok.start:tok.end])); tok.hash != want {
					t.Fatalf("word %q hashed to %x, want %x", text[tok.start:tok.end], tok.hash, want)
				}
			}
		}
		p := m.Classify(text)
		if p.Score < 0.5 || p.Score > 1 {
			t.Fatalf("score %v", p.Score)
		}
		ex := m.Explain(text, total+1)
		for _, c := range ex {
			if !utf8.ValidString(c.Feature) {
				t.Fatalf("explain feature %q is not valid UTF-8", c.Feature)
			}
		}
	})
}

// lowerWord is a word as the tokenizer hashes it: lowercased, with U+2019
// as an ASCII apostrophe.
func lowerWord(w string) string {
	var b strings.Builder
	for _, r := range w {
		if r == '\u2019' {
			r = '\''
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// FuzzLoad feeds arbitrary and mutated artifacts to the loader: it must
// return an error or a usable model, never panic.
func FuzzLoad(f *testing.F) {
	good, err := testModel(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(resum(good[:100]))
	f.Add([]byte("SAPM\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range [][]byte{data, resum(padTo(data, 44))} {
			m, err := Load(d)
			if err == nil {
				m.Classify("a test sentence")
			}
		}
	})
}

// padTo extends data so resum has a body to checksum.
func padTo(data []byte, n int) []byte {
	if len(data) >= n {
		return data
	}
	return append(append([]byte{}, data...), make([]byte, n-len(data))...)
}
