package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sentimentpro/sentiment/internal/rig"
)

var (
	buildMu   sync.Mutex
	buildDir  string
	buildDone = map[string]string{}
)

// GoBinary builds one of this module's commands (e.g. "./cmd/registry")
// once per test process and returns the path of the binary, so tests can
// run the real program as a separate process.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildDone[pkg]; ok {
		return p
	}
	if buildDir == "" {
		sweepBuildDirs()
		d, err := os.MkdirTemp("", fmt.Sprintf("sentiment-bin-%d-", os.Getpid()))
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build %s: %v\n%s", pkg, err, msg)
	}
	buildDone[pkg] = out
	return out
}

// sweepBuildDirs removes the binaries of test processes that have ended:
// a test binary cannot remove its own when it exits, so the next one does.
// Directories are named sentiment-bin-<pid>-<random>.
func sweepBuildDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sentiment-bin-*"))
	for _, d := range dirs {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), "sentiment-bin-"), "-")
		if !ok {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cannot find the module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// ProcStatus reads a field such as "VmRSS:" or "VmHWM:" of a process from
// /proc, in bytes.
func ProcStatus(pid int, field string) (int64, error) { return rig.ProcStatus(pid, field) }

// ResetPeakRSS clears a process's peak-RSS mark (VmHWM) so that a later
// ProcStatus(pid, "VmHWM:") covers only what happened since.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
