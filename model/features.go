package model

import "math"

// Features configures how a text becomes hashed sparse features.
type Features struct {
	HashBits int  `json:"hash_bits"` // the weight table has 2^HashBits entries
	NGrams   int  `json:"ngrams"`    // 1 = unigrams, 2 = + bigrams, 3 = + trigrams
	Negation bool `json:"negation"`  // mark words after a negator until the clause ends
	// Norm scales the feature sum: "none" (raw counts; best on short
	// sentences) or "sqrt" (divide by the square root of the feature count;
	// keeps long reviews' scores calibrated).
	Norm string `json:"norm"`
}

// Norm values.
const (
	NormNone = "none"
	NormSqrt = "sqrt"
)

// Scale returns the factor applied to the sum of n feature weights.
func (f Features) Scale(n int) float32 {
	if f.Norm == NormSqrt && n > 0 {
		return float32(1 / math.Sqrt(float64(n)))
	}
	return 1
}

// Feature-kind salts keep unigrams, bigrams and trigrams apart in the table.
const (
	saltUni = 0x9E3779B97F4A7C15
	saltBi  = 0xC2B2AE3D27D4EB4F
	saltTri = 0x165667B19E3779F9
	saltNeg = 0xD6E8FEB86659FD93
)

// mix is the splitmix64 finaliser: it spreads hash bits before the table
// index is taken from the top bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return x
}

// featureIter turns a text into the table indexes of its features, in
// order: for each word its unigram, then the bigram and trigram it ends. It
// lives on the caller's stack and allocates nothing.
type featureIter struct {
	tok      tokenizer
	shift    uint
	ngrams   int
	negation bool

	neg         bool   // inside a negated clause
	words       int    // words so far in this clause
	prev, prev2 uint64 // effective hashes of the last two words
	prevStart   int
	prev2Start  int

	// weights, when set, are prefetched as each feature's index is known,
	// so their loads overlap the tokenizer's work instead of following it:
	// in a server the network stack evicts them between requests
	// (BenchmarkPredictDiverse).
	weights []float32
}

// fetch prefetches feature j's weight, when the iterator has weights.
func (it *featureIter) fetch(j uint32) {
	if it.weights != nil {
		prefetch(&it.weights[j])
	}
}

// span says where a feature came from, for Explain.
type span struct {
	start, end int
	negated    bool
}

func (f Features) iter(text string) featureIter {
	return featureIter{tok: tokenizer{s: text}, shift: uint(64 - f.HashBits), ngrams: f.NGrams, negation: f.Negation}
}

func (it *featureIter) index(h, salt uint64) uint32 { return uint32(mix(h^salt) >> it.shift) }

// maxPerToken is the most features one token adds (unigram, bigram, trigram).
const maxPerToken = 3

// fill writes the next features' indexes into idx (and their spans into
// spans, when not nil) and returns how many it wrote: fewer than
// len(idx)-maxPerToken+1 only at the end of the text. len(idx) must be at
// least maxPerToken.
func (it *featureIter) fill(idx []uint32, spans []span) int {
	t := &it.tok
	n := 0
	for n+maxPerToken <= len(idx) && t.next() {
		switch t.kind {
		case tokBreak:
			it.neg, it.words = false, 0
			continue
		case tokSymbol:
			it.words = 0
			idx[n] = it.index(t.hash, saltUni)
			it.fetch(idx[n])
			if spans != nil {
				spans[n] = span{t.start, t.end, false}
			}
			n++
			continue
		}
		h := t.hash
		negated := it.negation && it.neg && !t.negator
		if negated {
			h ^= saltNeg
		}
		if t.negator && it.negation {
			it.neg = true
		}
		idx[n] = it.index(h, saltUni)
		it.fetch(idx[n])
		if spans != nil {
			spans[n] = span{t.start, t.end, negated}
		}
		n++
		if it.ngrams >= 2 && it.words >= 1 {
			idx[n] = it.index(it.prev*fnvPrime^h, saltBi)
			it.fetch(idx[n])
			if spans != nil {
				spans[n] = span{it.prevStart, t.end, false}
			}
			n++
		}
		if it.ngrams >= 3 && it.words >= 2 {
			idx[n] = it.index((it.prev2*fnvPrime^it.prev)*fnvPrime^h, saltTri)
			it.fetch(idx[n])
			if spans != nil {
				spans[n] = span{it.prev2Start, t.end, false}
			}
			n++
		}
		it.prev2, it.prev = it.prev, h
		it.prev2Start, it.prevStart = it.prevStart, t.start
		it.words++
	}
	return n
}

// AppendIndexes appends the weight-table index of every feature of text
// to dst, in the order Predict sums them (the trainer's encoding).
func (f Features) AppendIndexes(dst []uint32, text string) []uint32 {
	it := f.iter(text)
	var buf [256]uint32
	for {
		k := it.fill(buf[:], nil)
		dst = append(dst, buf[:k]...)
		if k == 0 {
			return dst
		}
	}
}

// WordSlots returns the table indexes of word's unigram feature: plain,
// then (for a word, when f marks negation) negated. It returns nil when
// the tokenizer does not read word as exactly one word or symbol, as a
// lexicon entry of two words.
func (f Features) WordSlots(word string) []uint32 {
	t := tokenizer{s: word}
	if !t.next() || t.kind == tokBreak {
		return nil
	}
	first := t
	if t.next() {
		return nil
	}
	it := f.iter("")
	slots := []uint32{it.index(first.hash, saltUni)}
	if first.kind == tokWord && f.Negation {
		slots = append(slots, it.index(first.hash^saltNeg, saltUni))
	}
	return slots
}
