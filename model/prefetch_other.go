//go:build !amd64 && !arm64

package model

// prefetch does nothing on architectures without an assembly version.
func prefetch(*float32) {}
