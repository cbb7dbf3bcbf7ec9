package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/store/dir"
)

// TestPublishPromoteRollbackCLI drives the registry verbs against a real
// registry (directory store) the way the ML team and operators would.
func TestPublishPromoteRollbackCLI(t *testing.T) {
	srv := startRegistry(t)
	t.Setenv("SENTCTL_REGISTRY", srv.URL)

	dirPath := t.TempDir()
	data := writeTSV(t, dirPath, "train.tsv", corpus())
	for _, v := range []string{"v1", "v2"} {
		art := filepath.Join(dirPath, v+".sapm")
		if code, out, errOut := sentctl(t, "train", "--data", data, "--dev", data, "--out", art, "--bits", "12", "--seed", v[1:]); code != 0 {
			t.Fatalf("train: %s%s", out, errOut)
		}
		// Sign v2 only: publish picks FILE.sig up by itself.
		if v == "v2" {
			sentctl(t, "keygen", "--out", filepath.Join(dirPath, "k"))
			sentctl(t, "sign", "--key", filepath.Join(dirPath, "k.key"), "--model", art)
		}
		t.Setenv("SENTCTL_TOKEN", registrytest.PublisherToken)
		code, out, errOut := sentctl(t, "publish", "--model", "demo", "--version", v, "--file", art, "--label", "team=ml")
		if code != 0 || !strings.Contains(out, "published demo/"+v) || !strings.Contains(out, "accuracy 1.0000") {
			t.Fatalf("publish %s: exit %d %s%s", v, code, out, errOut)
		}
	}
	// A publisher may not touch production.
	code, _, errOut := sentctl(t, "promote", "--model", "demo", "--version", "v1")
	if code != 1 || !strings.Contains(errOut, "403") {
		t.Fatalf("publisher promoting production: exit %d %s", code, errOut)
	}
	t.Setenv("SENTCTL_TOKEN", registrytest.AdminToken)
	steps := [][]string{
		{"promote", "--model", "demo", "--version", "v1"},
		{"promote", "--model", "demo", "--version", "v2", "--regions", "eu-west", "--reason", "canary in eu"},
		{"rollback", "--model", "demo", "--regions", "eu-west"},
	}
	for _, s := range steps {
		if code, out, errOut := sentctl(t, s...); code != 0 {
			t.Fatalf("%v: exit %d %s%s", s, code, out, errOut)
		}
	}
	// A candidate beside eu-west's target, then cleared.
	code, out, errOut := sentctl(t, "candidate", "set", "--model", "demo", "--region", "eu-west", "--version", "v2", "--percent", "10", "--shadow", "0.5")
	if code != 0 || !strings.Contains(out, "candidate eu-west: v2 answers 10%, shadow 0.5") {
		t.Fatalf("candidate set: exit %d %s%s", code, out, errOut)
	}
	if code, out, errOut := sentctl(t, "candidate", "clear", "--model", "demo", "--region", "eu-west"); code != 0 || strings.Contains(out, "candidate eu-west") {
		t.Fatalf("candidate clear: exit %d %s%s", code, out, errOut)
	}
	if code, _, errOut := sentctl(t, "candidate", "set", "--model", "demo", "--region", "eu-west", "--version", "v2", "--percent", "120"); code != 1 || !strings.Contains(errOut, "percent") {
		t.Fatalf("candidate at 120%%: exit %d %s", code, errOut)
	}
	code, out, _ = sentctl(t, "history", "--model", "demo")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.Contains(lines[0], "clear_candidate") || !strings.Contains(lines[2], "rollback") || !strings.Contains(lines[3], "canary in eu") {
		t.Fatalf("history: exit %d\n%s", code, out)
	}
	code, out, _ = sentctl(t, "audit", "--model", "demo")
	if code != 0 || strings.Count(out, "publish") != 2 || strings.Count(out, "promote") < 2 || !strings.Contains(out, "denied") {
		t.Fatalf("audit: exit %d\n%s", code, out)
	}
	// Status needs Consul; without it the error says so.
	code, _, errOut = sentctl(t, "status", "--model", "demo")
	if code != 1 || !strings.Contains(errOut, "Consul") {
		t.Fatalf("status without consul: exit %d %s", code, errOut)
	}
	// Bad input: missing flags, unknown registry.
	if code, _, errOut := sentctl(t, "publish", "--model", "demo"); code != 2 || !strings.Contains(errOut, "--version") {
		t.Fatalf("publish without flags: exit %d %s", code, errOut)
	}
	os.Setenv("SENTCTL_REGISTRY", "http://127.0.0.1:1")
	if code, _, errOut := sentctl(t, "history", "--model", "demo"); code != 1 || !strings.Contains(errOut, "cannot reach registry") {
		t.Fatalf("unreachable registry: exit %d %s", code, errOut)
	}
}

// startRegistry runs a registry in process on a directory store.
func startRegistry(t *testing.T) *registrytest.Server {
	t.Helper()
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return registrytest.Start(t, st, registry.Config{}, admin.Config{})
}
