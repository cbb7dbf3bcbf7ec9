package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCapacityCLI: the committed measurements plan a deployment, every
// figure with its source; fresh files are read when given; bad input is a
// usage error.
func TestCapacityCLI(t *testing.T) {
	code, out, errOut := sentctl(t, "capacity", "--rps", "2000000", "--regions", "5", "--model-mib", "64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"edges per region:", "central egress per promote:", "registry replicas:", "from: make scale:", "from: make bench "} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	bench := filepath.Join(dir, "bench.json")
	os.WriteFile(bench, []byte(`{"edge_rps": 1000, "cores": 2, "edge_rss_bytes": 1048576, "date": "fresh"}`), 0o644)
	if code, out, errOut = sentctl(t, "capacity", "--bench", bench); code != 0 || !strings.Contains(out, "make bench fresh: 1000 req/s") {
		t.Errorf("with a fresh bench file: exit %d, %s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"capacity", "--utilisation", "2"},
		{"capacity", "--regions", "0"},
		{"capacity", "--bench", filepath.Join(dir, "missing.json")},
		{"capacity", "extra"},
	} {
		if code, _, errOut := sentctl(t, args...); code == 0 || !strings.Contains(errOut, "sentctl capacity:") {
			t.Errorf("%v: exit %d, stderr %q; want a failure and a message", args, code, errOut)
		}
	}
}
