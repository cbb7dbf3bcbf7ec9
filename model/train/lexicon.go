package train

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/sentimentpro/sentiment/model"
)

// lexiconBands is how many bands backOff groups a lexicon's words in:
// valence rounded to the half point from -4 to 4 (17 bands), plain and
// negated.
const lexiconBands = 2 * 17

// band returns the band of a word of valence v, negated or not.
func band(v float64, negated bool) int {
	b := int(math.Round(math.Max(-4, math.Min(4, v))*2)) + 8
	if negated {
		b += 17
	}
	return b
}

// lexiconSlots maps the table slot of each lexicon word's unigram, plain
// and negated, to its band. Entries that are not one word (or one symbol,
// like an emoticon) to the tokenizer are skipped. Where two words share a
// slot, the first in sorted order wins, so the result does not depend on
// map order.
func lexiconSlots(lexicon map[string]float64, f model.Features) map[uint32]int {
	if len(lexicon) == 0 {
		return nil
	}
	words := make([]string, 0, len(lexicon))
	for w := range lexicon {
		words = append(words, w)
	}
	sort.Strings(words)
	slots := make(map[uint32]int, 2*len(words))
	for _, w := range words {
		for i, slot := range f.WordSlots(w) {
			if _, taken := slots[slot]; !taken {
				slots[slot] = band(lexicon[w], i == 1)
			}
		}
	}
	return slots
}

// backOff gives each lexicon word the training data never showed (its
// slot untouched) the mean weight of the words it did show in the same
// valence band, shrunk towards zero when that band has few words. Words
// the data showed keep their own weights, so the model is unchanged on
// text made of them.
func backOff(weights []float32, data []encoded, slots map[uint32]int) {
	if len(slots) == 0 {
		return
	}
	touched := make([]bool, len(weights))
	for _, ex := range data {
		for _, j := range ex.idx {
			touched[j] = true
		}
	}
	// In slot order: float sums depend on order, and the trainer must
	// reproduce its weights bit for bit.
	order := make([]uint32, 0, len(slots))
	for j := range slots {
		order = append(order, j)
	}
	slices.Sort(order)
	var sum [lexiconBands]float64
	var count [lexiconBands]int
	for _, j := range order {
		if b := slots[j]; touched[j] {
			sum[b] += float64(weights[j])
			count[b]++
		}
	}
	const shrink = 5 // a band's mean counts as this many words at zero
	for _, j := range order {
		if b := slots[j]; !touched[j] {
			weights[j] = float32(sum[b] / float64(count[b]+shrink))
		}
	}
}

// LexiconDigest is "sha256:<hex>" of a lexicon's entries, sorted, one
// "word<TAB>valence" per line.
func LexiconDigest(lexicon map[string]float64) string {
	words := make([]string, 0, len(lexicon))
	for w := range lexicon {
		words = append(words, w)
	}
	sort.Strings(words)
	h := sha256.New()
	for _, w := range words {
		fmt.Fprintf(h, "%s\t%g\n", w, lexicon[w])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
