package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

// TestServerSideApply applies what an operator applies to a real
// Kubernetes API server (kube-apiserver on etcd, RBAC, PodSecurity
// admission): the Prometheus Operator's published CRDs, then the base and
// every region's overlay, then deploy/prometheus-operator, each server
// side, first as a dry run, then for real. The server must take all of it
// with no warning: value validation, the namespace's restricted Pod
// Security Standard, the CRDs' schemas and field validation are the
// server's own. Broken copies are refused, or warned about, in the
// server's words.
func TestServerSideApply(t *testing.T) {
	api := testenv.StartKubeAPI(t)
	dir := t.TempDir()
	apply := func(what, file string) {
		t.Helper()
		for _, dry := range []string{"--dry-run=server", "--dry-run=none"} {
			out, warnings, err := api.Kubectl("apply", "--server-side", "--field-manager=sentiment-test", dry, "-f", file)
			if err != nil || strings.TrimSpace(warnings) != "" {
				t.Fatalf("%s (%s): %v\n%s\n%s", what, dry, err, warnings, out)
			}
		}
	}
	apply("the Prometheus Operator's CRDs", testenv.PrometheusOperatorCRDs(t))
	if _, errs, err := api.Kubectl("wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("the CRDs are not established: %v\n%s", err, errs)
	}
	// The namespace first: a dry run of what goes in it needs it to exist
	// (on a fresh cluster an operator's dry run needs it too).
	apply("the namespace", "base/namespace.yaml")
	for _, overlay := range append([]string{"base"}, overlayDirs()...) {
		file := filepath.Join(dir, strings.ReplaceAll(overlay, "/", "-")+".yaml")
		if err := os.WriteFile(file, build(t, overlay), 0o644); err != nil {
			t.Fatal(err)
		}
		apply(overlay, file)
	}
	apply("deploy/prometheus-operator", "../deploy/prometheus-operator")

	// Broken copies of the base: each refused or warned about by the
	// server itself.
	base := string(build(t, "base"))
	for _, c := range []struct{ name, from, to, want string }{
		{"a container port name over 15 characters", "name: https\n", "name: https-for-the-edges\n", "must be no more than 15 characters"},
		{"a container that may gain privileges", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", `violate PodSecurity "restricted:latest"`},
		{"an unknown field", "readinessProbe:", "readinesProbe:", `containers[name="edge"].readinesProbe: field not declared in schema`},
	} {
		if !strings.Contains(base, c.from) {
			t.Fatalf("%s: the base has no %q to break", c.name, c.from)
		}
		file := filepath.Join(dir, "broken.yaml")
		if err := os.WriteFile(file, []byte(strings.Replace(base, c.from, c.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs, err := api.Kubectl("apply", "--server-side", "--field-manager=sentiment-test", "--dry-run=server", "-f", file)
		if !strings.Contains(errs, c.want) {
			t.Errorf("%s: the server said %v\n%s\n%s\nwant %q", c.name, err, errs, out, c.want)
		}
	}
}

// overlayDirs are the region overlays' directories.
func overlayDirs() []string {
	var out []string
	for _, r := range regions {
		out = append(out, "overlays/"+r)
	}
	return out
}
