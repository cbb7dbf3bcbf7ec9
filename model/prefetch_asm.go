//go:build amd64 || arm64

package model

// prefetch asks the CPU to bring *p into its caches and returns at once:
// unlike a load, nothing waits for it.
//
//go:noescape
func prefetch(p *float32)
