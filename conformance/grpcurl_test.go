package conformance

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/internal/rig"
)

// TestGRPCExamples runs docs/EDGE.md's grpcurl lines against an edge and
// a geo router (their addresses put in place of make run's) and checks
// that each prints what its "# →" line names.
func TestGRPCExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge and geo binaries and grpcurl")
	}
	grpcurl, err := rig.Binary("grpcurl", "SAP_GRPCURL_BIN")
	if err != nil {
		t.Fatalf("grpcurl (make tools builds it): %v", err)
	}
	doc, err := os.ReadFile("../docs/EDGE.md")
	if err != nil {
		t.Fatal(err)
	}
	r := startGRPCRegions(t)
	lines := strings.Split(string(doc), "\n")
	ran := 0
	for i, line := range lines {
		if !strings.HasPrefix(line, "grpcurl ") {
			continue
		}
		want, ok := strings.CutPrefix(lines[i+1], "# → ")
		if !ok {
			t.Fatalf("docs/EDGE.md:%d: a grpcurl line without a \"# →\" line after it", i+1)
		}
		cmdline := strings.NewReplacer("127.0.0.1:9091", r.usGRPC, "127.0.0.1:9090", r.geoGRPC, "grpcurl ", grpcurl+" ").Replace(line)
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("docs/EDGE.md:%d: %s\n%v\n%s\nwant %q in the output", i+1, line, err, out, want)
		}
		ran++
	}
	if ran < 5 {
		t.Errorf("ran %d grpcurl examples, want the 5 of docs/EDGE.md", ran)
	}
}
