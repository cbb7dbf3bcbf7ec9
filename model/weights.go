package model

import "unsafe"

// hugePage is the size of an x86-64 and arm64 (4 KiB granule) huge page.
const hugePage = 2 << 20

// newWeights returns a zeroed weight table of n entries. A table of 2 MiB
// or more starts on a 2 MiB boundary and, where the system allows, asks
// for huge pages (adviseHugePages): Predict's loads land all over the
// table, and on 4 KiB pages nearly each is a TLB miss as well as a cache
// miss. Memory fresh from the system gets huge pages when first written,
// after the advice; reused heap memory keeps its pages until the kernel
// merges them. The unused head and tail are not written here, so fresh
// they cost address space, not memory.
func newWeights(n int) []float32 {
	size := 4 * n
	if size < hugePage {
		return make([]float32, n)
	}
	buf := make([]float32, n+hugePage/4)
	skip := (hugePage - int(uintptr(unsafe.Pointer(&buf[0]))%hugePage)) % hugePage / 4
	w := buf[skip : skip+n : skip+n]
	adviseHugePages(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), size))
	return w
}
