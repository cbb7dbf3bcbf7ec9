package tokenizer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/inference/tokenizer"
	"github.com/sentimentpro/sentiment/internal/testenv"
)

// exampleTokenizer is the example model's WordPiece tokenizer.json, made
// by examples/onnx/train.py.
const exampleTokenizer = "../../examples/onnx/sentiment-tiny-bert/tokenizer.json"

// TestMatchesReference encodes thousands of texts with this package and
// with Hugging Face's pure-JS tokenizers, for WordPiece (uncased and
// cased) and byte-level BPE (GPT-2's own file, and RoBERTa's layout of
// it), and wants the same ids and attention masks for every one.
func TestMatchesReference(t *testing.T) {
	ref := testenv.TokenizerReference(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node runs the reference tokenizer: %v", err)
	}
	wordPiece := readFile(t, exampleTokenizer)
	gpt2 := readFile(t, filepath.Join(ref, "gpt2", "tokenizer.json"))
	cases := []struct {
		name      string
		tokenizer []byte
		config    string
		texts     []string
	}{
		{"wordpiece-uncased", wordPiece, `{"model_max_length": 128}`, corpus(1, 6000, false)},
		{"wordpiece-cased", casedBert(t, wordPiece), `{"model_max_length": 128}`, corpus(2, 6000, false)},
		{"bpe-gpt2", gpt2, readString(t, filepath.Join(ref, "gpt2", "tokenizer_config.json")), corpus(3, 6000, true)},
		{"bpe-roberta", robertaLayout(t, gpt2), `{"model_max_length": 512}`, corpus(4, 3000, true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := tokenizer.Load(c.tokenizer)
			if err != nil {
				t.Fatal(err)
			}
			tok.SetMaxLength(0) // the reference does not truncate
			want := runReference(t, node, ref, c.tokenizer, c.config, c.texts)
			mismatches := 0
			for i, text := range c.texts {
				got := tok.Encode(text)
				mask := slices.Repeat([]int64{1}, len(got.IDs))
				if !slices.Equal(got.IDs, want[i].IDs) || !slices.Equal(mask, want[i].Mask) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("text %d %q:\n got  %v\n want %v", i, text, got.IDs, want[i].IDs)
					}
				}
			}
			if mismatches > 0 {
				t.Fatalf("%d of %d texts differ from the reference", mismatches, len(c.texts))
			}
			t.Logf("%d texts, ids and masks equal to the reference's", len(c.texts))
		})
	}
}

type referenceEncoding struct {
	IDs  []int64 `json:"ids"`
	Mask []int64 `json:"mask"`
}

// runReference encodes texts with testdata/reference.mjs.
func runReference(t *testing.T, node, ref string, tokenizerJSON []byte, config string, texts []string) []referenceEncoding {
	t.Helper()
	dir := t.TempDir()
	tokPath, confPath := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(tokPath, tokenizerJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, text := range texts {
		line, _ := json.Marshal(text)
		in.Write(line)
		in.WriteByte('\n')
	}
	cmd := exec.Command(node, "testdata/reference.mjs", filepath.Join(ref, "tokenizers.mjs"), tokPath, confPath)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference: %v: %s", err, stderr.String())
	}
	var encs []referenceEncoding
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var e referenceEncoding
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("reference output: %v", err)
		}
		encs = append(encs, e)
	}
	if len(encs) != len(texts) {
		t.Fatalf("reference encoded %d texts of %d", len(encs), len(texts))
	}
	return encs
}

// casedBert is a WordPiece tokenizer.json that keeps case and accents.
func casedBert(t *testing.T, data []byte) []byte {
	return editJSON(t, data, func(f map[string]any) {
		n := f["normalizer"].(map[string]any)
		n["lowercase"] = false
		n["strip_accents"] = false
	})
}

// robertaLayout is GPT-2's vocabulary laid out as RoBERTa's tokenizer.json
// is: <s> and </s> around the text (RobertaProcessing), a prefix space,
// and added tokens such as <mask>, which eats the space before it.
func robertaLayout(t *testing.T, data []byte) []byte {
	return editJSON(t, data, func(f map[string]any) {
		vocab := f["model"].(map[string]any)["vocab"].(map[string]any)
		next := float64(len(vocab))
		added := []any{}
		for _, tok := range []struct {
			content string
			lstrip  bool
		}{{"<s>", false}, {"</s>", false}, {"<pad>", false}, {"<unk>", false}, {"<mask>", true}} {
			vocab[tok.content] = next
			added = append(added, map[string]any{"id": next, "content": tok.content, "single_word": false,
				"lstrip": tok.lstrip, "rstrip": false, "normalized": false, "special": true})
			next++
		}
		f["added_tokens"] = added
		f["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}
		f["post_processor"] = map[string]any{"type": "RobertaProcessing",
			"sep": []any{"</s>", vocab["</s>"]}, "cls": []any{"<s>", vocab["<s>"]},
			"trim_offsets": true, "add_prefix_space": true}
	})
}

func editJSON(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	edit(f)
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readString(t *testing.T, path string) string { return string(readFile(t, path)) }

// corpus is n texts made of the pieces real reviews and hostile clients
// send, from seed: words in every case, accents, CJK, emoji, URLs,
// numbers, punctuation, odd white space, control characters and special
// tokens' spellings, from empty to thousands of characters. byteLevel
// says the texts are for a byte-level tokenizer (no normalizer), so they
// may hold supplementary-plane CJK; they never hold what docs/MODELS.md
// lists as the JS reference's known differences from the Rust crate.
func corpus(seed uint64, n int, byteLevel bool) []string {
	r := rand.New(rand.NewPCG(seed, seed*7919))
	words := strings.Fields(`the a movie film was is not very good bad great terrible boring
		brilliant acting plot it's don't won't I'M you're we'll they've she'd masterpiece
		unwatchable overlong underrated heartfelt Oscar-worthy 90-minute self-indulgent`)
	pieces := []string{
		"café", "naïve", "Über", "São Paulo", "Ångström", "façade", "résumé", "İstanbul", "ΣΟΦΙΑ",
		"Ελληνικά", "Русский фильм", "e\u0301", "n\u0303o", "ﬁlm", "Ⅻ", "²³", "١٢٣", "½",
		"中文", "日本語のテキスト", "한국어 영화", "電影很好看", "ｆｕｌｌｗｉｄｔｈ",
		"😀", "👍🏽", "❤️", "🇫🇷", "👨‍👩‍👧", "🎬🍿",
		"https://example.com/path?q=1&x=y#frag", "user@example.org", "#great", "@critic",
		"3.14", "1,000,000", "$9.99", "100%", "10/10", "24/7", "1990s",
		"...", "!!!", "?!", "—", "–", "«bravo»", "“quoted”", "(aside)", "[note]", "{x}", "<b>bold</b>",
		"'s", "'re", "''", "``", "'tis",
		"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "<|endoftext|>", "<s>", "</s>", "<mask>", "<pad>",
		"\t", "\n", "\r\n", "  ", "\u00a0", "\u3000", "\u2028", "\u2009", "\u200b", "\u0007", "\u0000", "\ufffd", "\u00ad",
	}
	if byteLevel {
		pieces = append(pieces, "𠀀𠀁", "𪚲")
	} else {
		pieces = append(pieces, "\u0085", "\ufeff")
	}
	texts := make([]string, 0, n)
	texts = append(texts, "", " ", "\n", strings.Repeat("a", 150), strings.Repeat("supercalifragilistic", 8))
	for len(texts) < n {
		var sb strings.Builder
		count := 1 + r.IntN(30)
		if r.IntN(50) == 0 {
			count = 400 + r.IntN(600) // long texts
		}
		for range count {
			var p string
			switch r.IntN(3) {
			case 0, 1:
				p = words[r.IntN(len(words))]
				switch r.IntN(6) {
				case 0:
					p = strings.ToUpper(p)
				case 1:
					p = strings.ToUpper(p[:1]) + p[1:]
				}
			default:
				p = pieces[r.IntN(len(pieces))]
			}
			sb.WriteString(p)
			switch r.IntN(8) {
			case 0:
			case 1:
				sb.WriteString("  ")
			default:
				sb.WriteByte(' ')
			}
		}
		texts = append(texts, sb.String())
	}
	return texts
}
