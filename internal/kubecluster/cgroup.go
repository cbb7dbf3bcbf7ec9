package kubecluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupDirs lists the cluster's cgroups in every hierarchy, deepest
// first.
func cgroupDirs() []string {
	var dirs []string
	for _, h := range hierarchies() {
		root := filepath.Join(h, cgroupRoot)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// killCgroups sends SIGKILL to every process in the cluster's cgroups
// (the containers) until none is left, for up to ten seconds.
func killCgroups() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		left := 0
		for _, d := range cgroupDirs() {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					left++
				}
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroups removes the cluster's cgroups, deepest first; a cgroup
// still emptying is tried again for a few seconds.
func removeCgroups() error {
	var last error
	for range 50 {
		last = nil
		for _, d := range cgroupDirs() {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				last = fmt.Errorf("cannot remove the cgroup %s: %w", d, err)
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// unmount detaches the mount at path.
func unmount(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot unmount %s: %w", path, err)
	}
	return nil
}

// unmountUnder detaches every mount at or below dir.
func unmountUnder(dir string) {
	for _, m := range mountsUnder(dir) {
		_ = unmount(m)
	}
}
