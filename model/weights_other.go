//go:build !linux

package model

// adviseHugePages does nothing: huge pages are requested on Linux only.
func adviseHugePages([]byte) {}
