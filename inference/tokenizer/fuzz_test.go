package tokenizer

import (
	"os"
	"testing"
)

// FuzzLoad feeds the loader mangled tokenizer.json files: it must refuse
// or load, never panic, and what it loads must encode any text into ids
// of its vocabulary.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(tinyWordPiece))
	f.Add([]byte(tinyBPE))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}}`))
	f.Add([]byte(`{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}, "post_processor": {"type": "BertProcessing", "sep": ["[UNK]", 0], "cls": ["[UNK]", 0]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Load(data)
		if err != nil {
			return
		}
		tok.SetMaxLength(64)
		for _, text := range []string{"", "Hello, world! It's 😀 中文", "aaaa bbbb\u0085\ufeff", string(data[:min(len(data), 200)])} {
			checkEncoding(t, tok, text)
		}
	})
}

// FuzzEncode feeds the example model's tokenizer any text.
func FuzzEncode(f *testing.F) {
	data, err := os.ReadFile("../../examples/onnx/sentiment-tiny-bert/tokenizer.json")
	if err != nil {
		f.Fatal(err)
	}
	tok, err := Load(data)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "A gripping film!", "ΟΔΟΣ 𠀀 [CLS]x[SEP]", "\xff\xfe invalid", "e\u0301\u0301\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkEncoding(t, tok, text)
	})
}

// checkEncoding encodes text and checks the encoding's shape: ids in the
// vocabulary, one type id each, no more than the maximum length.
func checkEncoding(t *testing.T, tok *Tokenizer, text string) {
	t.Helper()
	enc := tok.Encode(text)
	if len(enc.TypeIDs) != len(enc.IDs) {
		t.Fatalf("%d type ids for %d ids", len(enc.TypeIDs), len(enc.IDs))
	}
	if m := tok.MaxLength(); m > 0 && len(enc.IDs) > max(m, tok.SpecialTokens()) {
		t.Fatalf("%d ids, past the maximum %d", len(enc.IDs), m)
	}
	vocab := int64(tok.VocabSize())
	for _, id := range enc.IDs {
		if id < 0 || id >= vocab {
			t.Fatalf("id %d outside the vocabulary of %d", id, vocab)
		}
	}
}
