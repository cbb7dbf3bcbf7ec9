package model

import (
	"testing"
	"unsafe"
)

// TestNewWeights: a large table starts on a huge-page boundary, has
// exactly n zeroed entries, and cannot grow into the allocation's tail.
func TestNewWeights(t *testing.T) {
	for _, n := range []int{1 << 10, 1 << 19, 1 << 21} {
		w := newWeights(n)
		if len(w) != n || cap(w) != n {
			t.Fatalf("newWeights(%d): len %d cap %d", n, len(w), cap(w))
		}
		for i, x := range w {
			if x != 0 {
				t.Fatalf("newWeights(%d)[%d] = %v", n, i, x)
			}
		}
		if addr := uintptr(unsafe.Pointer(&w[0])); 4*n >= hugePage && addr%hugePage != 0 {
			t.Errorf("newWeights(%d) starts at %#x, not on a %d-byte boundary", n, addr, hugePage)
		}
	}
}
