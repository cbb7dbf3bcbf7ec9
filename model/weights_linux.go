package model

import "syscall"

// adviseHugePages asks Linux to back b with transparent huge pages; when
// the system's THP mode is "madvise" that is what turns them on. Failure
// only costs speed, so it is ignored.
func adviseHugePages(b []byte) {
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
}
