package tokenizer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sentimentpro/sentiment/inference/tokenizer"
	"github.com/sentimentpro/sentiment/internal/testenv"
)

// review is an SST-2-sized sentence.
const review = "A gripping, beautifully acted film that never loses its nerve -- though the last act drags a little."

func benchEncode(b *testing.B, data []byte) {
	tok, err := tokenizer.Load(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(review)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(review)
	}
}

func BenchmarkEncodeWordPiece(b *testing.B) {
	data, err := os.ReadFile(exampleTokenizer)
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, data)
}

func BenchmarkEncodeGPT2(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testenv.TokenizerReference(b), "gpt2", "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, data)
}
