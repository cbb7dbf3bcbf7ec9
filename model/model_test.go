package model

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// tokens lists the unigram feature names of text, as Explain names them.
func tokens(text string) []string {
	it := Features{HashBits: 16, NGrams: 1, Negation: true, Norm: NormNone}.iter(text)
	var idx [64]uint32
	var spans [64]span
	var out []string
	for {
		k := it.fill(idx[:], spans[:])
		if k == 0 {
			return out
		}
		for _, sp := range spans[:k] {
			out = append(out, featureName(text, sp))
		}
	}
}

func TestTokenizer(t *testing.T) {
	f := func(text string, want ...string) {
		t.Helper()
		got := tokens(text)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("tokens(%q) = %q, want %q", text, got, want)
		}
	}
	f("")
	f("   \t\n")
	f("Not good.", "not", "NOT_good")
	f("not good . good", "not", "NOT_good", "good")
	f("This movie isn't funny, but great", "this", "movie", "isn't", "NOT_funny", "but", "great")
	f("I don\u2019t like it", "i", "don\u2019t", "NOT_like", "NOT_it")
	f("it does n't work", "it", "does", "n't", "NOT_work")
	f("it 's fine", "it", "'s", "fine")
	f("Great<br /><br />Awful", "great", "awful")
	f("a <b>bold</b> claim", "a", "bold", "claim")
	f("x < y > z", "x", "y", "z")
	f("I love it \U0001F60D!!", "i", "love", "it", "\U0001F60D", "!", "!")
	f("thumbs \U0001F44D\U0001F3FD", "thumbs", "\U0001F44D")
	f("bad :( but ok :-)", "bad", ":(", "but", "ok", ":-)")
	f("good\xffbad\xc3", "good", "bad")
	f("Caf\u00e9 \u00c9T\u00c9", "caf\u00e9", "\u00e9t\u00e9")
	f("see http://x.com now", "see", "http", "x", "com", "now")
	f("UNFLINCHINGLY bleak", "unflinchingly", "bleak")
	f("abcdefgh ijklmnopq", "abcdefgh", "ijklmnopq")
	f("numbers 42 and 3.5", "numbers", "42", "and", "3", "5")
}

func TestHashIgnoresCaseAndApostropheForm(t *testing.T) {
	feats := Features{HashBits: 20, NGrams: 2, Negation: true, Norm: NormNone}
	same := func(a, b string) {
		t.Helper()
		x, y := feats.AppendIndexes(nil, a), feats.AppendIndexes(nil, b)
		if fmt.Sprint(x) != fmt.Sprint(y) {
			t.Errorf("features of %q %v differ from %q %v", a, x, b, y)
		}
	}
	same("GOOD Movie", "good movie")
	same("UNFLINCHINGLY UNFORGETTABLE", "unflinchingly unforgettable")
	same("don\u2019t", "don't")
	same("\u00c9T\u00c9 superbe", "\u00e9t\u00e9 superbe")
	// The SWAR path (8+ ASCII bytes) and the byte path agree: the same word
	// at the end of a text (byte path) and inside one (fast path).
	a := feats.AppendIndexes(nil, "wonderfully")
	b := feats.AppendIndexes(nil, "wonderfully and")
	if a[0] != b[0] {
		t.Errorf("word hash depends on the path: %d vs %d", a[0], b[0])
	}
}

// testModel is a valid model of random weights: the format's and the
// runtime's tests need one, not a trained one (model/train trains).
func testModel(t testing.TB) *Model {
	t.Helper()
	md := Metadata{Name: "test", Labels: []string{"negative", "positive"},
		Features: Features{HashBits: 12, NGrams: 2, Negation: true, Norm: NormNone},
		Training: Training{DataDigest: "sha256:" + strings.Repeat("0", 64), Examples: 2000, Epochs: 6, Seed: 1}}
	rng := rand.New(rand.NewPCG(1, 2))
	weights := make([]float32, 1<<md.Features.HashBits)
	for i := range weights {
		weights[i] = float32(rng.NormFloat64())
	}
	m, err := New(md, weights, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// texts are inputs for the runtime's tests: words, negation, markup,
// emoji, invalid UTF-8.
var texts = []string{"the film was great", "the film was not great", "a dull movie", "", "caf\u00e9 \U0001F60D", "\xff\xfe", "<br />it is charming, isn't it?"}

func TestArtifactRoundTrip(t *testing.T) {
	m := testModel(t)
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Digest() != Digest(data) || !strings.HasPrefix(loaded.Digest(), "sha256:") {
		t.Fatalf("digest %q", loaded.Digest())
	}
	for _, text := range texts {
		if a, b := m.Classify(text), loaded.Classify(text); a != b {
			t.Fatalf("%q: %+v before encoding, %+v after", text, a, b)
		}
	}
	if loaded.Meta().Training.Examples != 2000 || loaded.Meta().Name != "test" {
		t.Fatalf("metadata %+v", loaded.Meta())
	}
}

// corrupt rebuilds an artifact with a valid checksum around a changed body,
// so the loader's field checks (not just the checksum) are exercised.
func resum(data []byte) []byte {
	body := data[:len(data)-checksumSize]
	d, _ := ParseDigest(Digest(body))
	return append(append([]byte{}, body...), d...)
}

type corruptCase struct {
	name string
	data []byte
	want error
}

func corruptArtifacts(t *testing.T) (good []byte, cases []corruptCase) {
	good, err := testModel(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint32(good[8:]))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	setHeader := func(b []byte, old, new string) []byte {
		h := strings.Replace(string(b[12:12+hlen]), old, new, 1)
		out := append(append(append([]byte{}, b[:8]...), binary.LittleEndian.AppendUint32(nil, uint32(len(h)))...), h...)
		return resum(append(out, b[12+hlen:]...))
	}
	return good, []corruptCase{
		{"empty", nil, ErrTruncated},
		{"truncated header", good[:20], ErrTruncated},
		{"truncated weights", good[:len(good)/2], ErrChecksum},
		{"truncated, resummed", resum(good[:len(good)-100]), ErrSizeMismatch},
		{"flipped byte", mod(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), ErrChecksum},
		{"flipped checksum", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrChecksum},
		{"wrong magic", mod(func(b []byte) []byte { copy(b, "ZIP!"); return b }), ErrBadMagic},
		{"future version", mod(func(b []byte) []byte { b[4] = 9; return resum(b) }), ErrUnsupportedVersion},
		{"huge header length", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0xFFFFFFF0); return resum(b) }), ErrBadHeader},
		{"header length past the end", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], uint32(len(b))); return resum(b) }), ErrTruncated},
		{"zero header length", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0); return resum(b) }), ErrBadHeader},
		{"huge hash_bits", setHeader(good, `"hash_bits":12`, `"hash_bits":60`), ErrBadHeader},
		{"hash_bits disagrees with size", setHeader(good, `"hash_bits":12`, `"hash_bits":13`), ErrSizeMismatch},
		{"unknown header field", setHeader(good, `"name":`, `"evil":1,"name":`), ErrBadHeader},
		{"one label", setHeader(good, `"labels":["negative","positive"]`, `"labels":["x"]`), ErrBadHeader},
		{"bad norm", setHeader(good, `"norm":"none"`, `"norm":"log"`), ErrBadHeader},
		{"header not JSON", setHeader(good, `{`, `[`), ErrBadHeader},
		{"NaN weight", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12+hlen+40:], math.Float32bits(float32(math.NaN())))
			return resum(b)
		}), ErrBadWeights},
		{"too large", make([]byte, MaxArtifactSize+1), ErrTooLarge},
	}
}

func TestLoadRejectsCorruptArtifacts(t *testing.T) {
	_, cases := corruptArtifacts(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPredictAllocatesNothing(t *testing.T) {
	m := testModel(t)
	long := strings.Repeat("the acting was not great but the story is charming ", 40)
	for _, text := range []string{"a wonderful film", long, "", "\xff\xfe", "caf\u00e9 \U0001F60D"} {
		if n := testing.AllocsPerRun(100, func() { m.Classify(text) }); n != 0 {
			t.Errorf("Predict(%.20q) allocates %.0f times", text, n)
		}
	}
}

// TestPredictIsClassifyBatched: the Predictor's batch Predict gives each
// text the probabilities Classify gives it, label 0's then label 1's,
// without allocating, and refuses a probs slice of the wrong length.
func TestPredictIsClassifyBatched(t *testing.T) {
	m := testModel(t)
	texts := []string{"a wonderful film", "the film was not great", "", "caf\u00e9 \U0001F60D"}
	probs := make([]float32, 2*len(texts))
	if err := m.Predict(texts, probs); err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		p := m.Classify(text)
		if probs[2*i+1] != p.Positive || probs[2*i] != 1-p.Positive {
			t.Errorf("%q: Predict %v, Classify positive %v", text, probs[2*i:2*i+2], p.Positive)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Predict(texts, probs) }); n != 0 {
		t.Errorf("Predict allocates %.0f times", n)
	}
	if err := m.Predict(texts, probs[:3]); err == nil {
		t.Error("Predict into 3 probabilities for 4 texts did not fail")
	}
}

func TestSignVerify(t *testing.T) {
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := GenerateKey()
	data, _ := testModel(t).Encode()
	digest := Digest(data)
	sig, err := Sign(priv, digest)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := Verify(sig, digest, []ed25519.PublicKey{otherPub, pub}); err != nil || id != KeyID(pub) {
		t.Fatalf("Verify = %q, %v", id, err)
	}
	// Round trip through the on-disk encodings.
	parsed, err := ParseSignature(EncodeSignature(sig))
	if err != nil || parsed != sig {
		t.Fatalf("ParseSignature = %+v, %v", parsed, err)
	}
	keys, err := ParsePublicKeys(append(MarshalPublicKey(otherPub), MarshalPublicKey(pub)...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys = %d keys, %v", len(keys), err)
	}
	back, err := ParsePrivateKey(MarshalPrivateKey(priv))
	if err != nil || !back.Equal(priv) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}

	other := Digest(append(data, 0))
	wrongKeySig, _ := Sign(otherPriv, digest)
	flipped := sig
	raw := []byte(flipped.Signature)
	raw[3] ^= 0x01
	flipped.Signature = string(raw)
	bad := []struct {
		name   string
		sig    Signature
		digest string
	}{
		{"other artifact", sig, other},
		{"signed by an untrusted key", wrongKeySig, digest},
		{"flipped signature byte", flipped, digest},
		{"garbage signature", Signature{Algorithm: "ed25519", KeyID: sig.KeyID, Digest: digest, Signature: "!!"}, digest},
		{"wrong algorithm", Signature{Algorithm: "rsa", KeyID: sig.KeyID, Digest: digest, Signature: sig.Signature}, digest},
	}
	for _, tc := range bad {
		if _, err := Verify(tc.sig, tc.digest, []ed25519.PublicKey{pub}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", tc.name, err)
		}
	}
	if _, err := ParseSignature([]byte(`{"algorithm":"ed25519","extra":1}`)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unknown field: %v", err)
	}
}

// TestVerifierAgreesWithLoad streams every corrupt artifact through the
// Verifier in uneven chunks: it must reject each one (the error kind may
// differ where streaming sees a problem before the checksum), and accept the
// good artifact with the same metadata Load reads.
func TestVerifierAgreesWithLoad(t *testing.T) {
	good, cases := corruptArtifacts(t)
	stream := func(data []byte, chunk int) (Metadata, error) {
		v := NewVerifier()
		for len(data) > 0 {
			k := min(chunk, len(data))
			if _, err := v.Write(data[:k]); err != nil {
				return Metadata{}, err
			}
			data = data[k:]
			chunk = chunk*7%13 + 1
		}
		return v.Close()
	}
	for _, chunk := range []int{1, 3, 4096} {
		md, err := stream(good, chunk)
		if err != nil {
			t.Fatalf("chunk %d: good artifact rejected: %v", chunk, err)
		}
		m, _ := Load(good)
		if md.Name != m.Meta().Name || !reflect.DeepEqual(md.Training, m.Meta().Training) {
			t.Fatalf("metadata %+v, Load read %+v", md, m.Meta())
		}
		for _, tc := range cases {
			if tc.name == "too large" {
				continue // a size limit is the caller's (the registry's upload cap)
			}
			if _, err := stream(tc.data, chunk); err == nil {
				t.Errorf("chunk %d, %s: accepted", chunk, tc.name)
			}
		}
	}
	if _, err := stream(append(append([]byte{}, good...), 0), 4096); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("trailing byte: %v, want ErrSizeMismatch", err)
	}
}
