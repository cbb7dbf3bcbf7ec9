package tokenizer

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is byte-pair encoding: a word starts as its characters and the
// adjacent pair with the lowest merge rank is merged, leftmost first,
// until no pair has a merge.
type bpe struct {
	vocab        map[string]int64
	merges       map[uint64]merge // by pairKey(left, right)
	unk          int64            // -1: none; unknown characters are dropped
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	cache wordCache
}

// wordCache holds the ids of words already merged, as the Rust crate's
// cache does: it fills up to its capacity and then only serves.
type wordCache struct {
	mu    sync.RWMutex
	words map[string][]int64
}

const (
	cacheWords   = 10000 // the Rust crate's default capacity
	cacheMaxWord = 256   // bytes; longer words are not cached
)

func (c *wordCache) get(word string) ([]int64, bool) {
	c.mu.RLock()
	ids, ok := c.words[word]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(word string, ids []int64) {
	if len(word) > cacheMaxWord {
		return
	}
	c.mu.Lock()
	if c.words == nil {
		c.words = make(map[string][]int64)
	}
	if len(c.words) < cacheWords {
		c.words[word] = ids
	}
	c.mu.Unlock()
}

// merge is what a pair becomes: its rank (lower merges first) and the id
// of the merged token.
type merge struct {
	rank int
	id   int64
}

func pairKey(left, right int64) uint64 { return uint64(left)<<32 | uint64(right) }

func newBPE(raw json.RawMessage, vocab map[string]int64) (*bpe, error) {
	var c struct {
		Merges                  []json.RawMessage `json:"merges"`
		UnkToken                *string           `json:"unk_token"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		FuseUnk                 bool              `json:"fuse_unk"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Dropout                 *float64          `json:"dropout"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if c.Dropout != nil && *c.Dropout != 0 {
		return nil, fmt.Errorf("BPE: dropout %g makes tokens random; serve with dropout null", *c.Dropout)
	}
	b := &bpe{vocab: vocab, unk: -1, fuseUnk: c.FuseUnk, byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges}
	if c.ContinuingSubwordPrefix != nil {
		b.prefix = *c.ContinuingSubwordPrefix
	}
	if c.EndOfWordSuffix != nil {
		b.suffix = *c.EndOfWordSuffix
	}
	if c.UnkToken != nil {
		id, ok := vocab[*c.UnkToken]
		if !ok {
			return nil, fmt.Errorf("BPE: unk_token %q is not in the vocab", *c.UnkToken)
		}
		b.unk = id
	}
	for token, id := range vocab {
		if id >= 1<<31 {
			return nil, fmt.Errorf("BPE: token %q has id %d, past 2^31", token, id)
		}
	}
	b.merges = make(map[uint64]merge, len(c.Merges))
	for rank, m := range c.Merges {
		left, right, err := parseMerge(m)
		if err != nil {
			return nil, fmt.Errorf("BPE: merge %d: %w", rank, err)
		}
		if err := b.addMerge(rank, left, right); err != nil {
			return nil, fmt.Errorf("BPE: merge %d: %w", rank, err)
		}
	}
	return b, nil
}

// parseMerge reads a merge as "a b" or ["a", "b"].
func parseMerge(raw json.RawMessage) (left, right string, err error) {
	var pair []string
	if json.Unmarshal(raw, &pair) == nil {
		if len(pair) != 2 {
			return "", "", fmt.Errorf("want two tokens, have %d", len(pair))
		}
		return pair[0], pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", fmt.Errorf("want \"a b\" or [\"a\", \"b\"]")
	}
	left, right, ok := strings.Cut(s, " ")
	if !ok {
		return "", "", fmt.Errorf("%q is not two tokens", s)
	}
	return left, right, nil
}

func (b *bpe) addMerge(rank int, left, right string) error {
	leftID, ok := b.vocab[left]
	if !ok {
		return fmt.Errorf("%q is not in the vocab", left)
	}
	rightID, ok := b.vocab[right]
	if !ok {
		return fmt.Errorf("%q is not in the vocab", right)
	}
	merged := left + strings.TrimPrefix(right, b.prefix)
	id, ok := b.vocab[merged]
	if !ok {
		return fmt.Errorf("merged token %q is not in the vocab", merged)
	}
	b.merges[pairKey(leftID, rightID)] = merge{rank: rank, id: id}
	return nil
}

func (b *bpe) tokenize(word string, ids []int64) []int64 {
	if word == "" {
		return ids
	}
	if b.ignoreMerges {
		if id, ok := b.vocab[word]; ok {
			return append(ids, id)
		}
	}
	if cached, ok := b.cache.get(word); ok {
		return append(ids, cached...)
	}
	syms := b.symbols(word)
	b.mergeAll(syms)
	mark := len(ids)
	for _, s := range syms {
		if s.id >= 0 {
			ids = append(ids, s.id)
		}
	}
	b.cache.put(word, slices.Clone(ids[mark:]))
	return ids
}

// symbol is one token of a word being merged: a linked list over a slice,
// id -1 once merged into its left neighbour.
type symbol struct {
	id         int64
	prev, next int
}

// symbols is word's characters as vocabulary ids, with the prefix on all
// but the first and the suffix on the last; a character not in the
// vocabulary becomes its bytes (byte_fallback), the unknown token (fused
// with a neighbouring one if fuse_unk) or nothing.
func (b *bpe) symbols(word string) []symbol {
	var ids []int64
	pendingUnk := false
	buf := make([]byte, 0, 16)
	for i, r := range word {
		size := utf8.RuneLen(r)
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, b.prefix...)
		}
		buf = append(buf, word[i:i+size]...)
		if i+size == len(word) {
			buf = append(buf, b.suffix...)
		}
		if id, ok := b.vocab[string(buf)]; ok {
			if pendingUnk {
				ids = append(ids, b.unk)
				pendingUnk = false
			}
			ids = append(ids, id)
			continue
		}
		if b.byteFallback {
			if bytes, ok := b.byteTokens(buf); ok {
				ids = append(ids, bytes...)
				continue
			}
		}
		if b.unk >= 0 {
			if pendingUnk && !b.fuseUnk {
				ids = append(ids, b.unk)
			}
			pendingUnk = true
		}
	}
	if pendingUnk {
		ids = append(ids, b.unk)
	}
	syms := make([]symbol, len(ids))
	for i, id := range ids {
		syms[i] = symbol{id: id, prev: i - 1, next: i + 1}
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

// byteTokens is s as byte tokens <0x41>, if the vocabulary has them all.
func (b *bpe) byteTokens(s []byte) ([]int64, bool) {
	out := make([]int64, 0, len(s))
	for _, c := range s {
		id, ok := b.vocab[fmt.Sprintf("<0x%02X>", c)]
		if !ok {
			return nil, false
		}
		out = append(out, id)
	}
	return out, true
}

// mergeAll applies the merges, lowest rank first and leftmost among
// equals, as the Rust crate's Word::merge_all does.
func (b *bpe) mergeAll(syms []symbol) {
	q := make(mergeQueue, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := b.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			q = append(q, pending{rank: m.rank, pos: i, id: m.id})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(pending)
		cur := &syms[top.pos]
		if cur.id < 0 || cur.next < 0 {
			continue
		}
		right := syms[cur.next]
		if m, ok := b.merges[pairKey(cur.id, right.id)]; !ok || m.id != top.id {
			continue // stale: a neighbour changed since this was queued
		}
		cur.id = top.id
		syms[cur.next].id = -1
		cur.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if m, ok := b.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				heap.Push(&q, pending{rank: m.rank, pos: cur.prev, id: m.id})
			}
		}
		if cur.next >= 0 {
			if m, ok := b.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				heap.Push(&q, pending{rank: m.rank, pos: top.pos, id: m.id})
			}
		}
	}
}

// pending is a merge queued at a symbol's position.
type pending struct {
	rank, pos int
	id        int64
}

type mergeQueue []pending

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(pending)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
