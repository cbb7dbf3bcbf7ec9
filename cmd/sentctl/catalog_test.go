package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files of -o json")

// timeRE and portRE match the parts of a value that differ from run to
// run; volatileKeys name the fields that do.
var (
	timeRE       = regexp.MustCompile(`^\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)$`)
	portRE       = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	volatileKeys = map[string]bool{"id": true, "request_id": true, "actor": true, "publisher": true, "key_id": true,
		"signature": true, "replica": true, "figures": true, "baseline": true}
	// dropKeys are present or not by timing: whether a rollout's
	// controller took its lease (and wrote a revision) before the test
	// looked.
	dropKeys = map[string]bool{"holder": true, "lease_until": true}
)

// stable replaces the volatile parts of decoded JSON.
func stable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if dropKeys[k] || k == "revision" && x["spec"] != nil {
				delete(x, k)
			} else if volatileKeys[k] && val != nil {
				x[k] = "<" + k + ">"
			} else {
				x[k] = stable(val)
			}
		}
	case []any:
		for i := range x {
			x[i] = stable(x[i])
		}
	case string:
		if timeRE.MatchString(x) {
			return "<time>"
		}
		return portRE.ReplaceAllString(x, "127.0.0.1:<port>")
	}
	return v
}

// golden compares the JSON out, its volatile parts replaced, with
// testdata/golden/<name>.json (go test -run TestCatalogCLI -update
// rewrites them).
func golden(t *testing.T, name, out string) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, out)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(stable(v)); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/sentctl -run TestCatalogCLI -update)", err)
	}
	if got != string(want) {
		t.Errorf("-o json of %s changed (-update rewrites %s):\n%s\nwant:\n%s", name, path, got, want)
	}
}

// TestCatalogCLI drives the read verbs, edits, pulls, dry runs and waits
// against the registry binary and an edge it knows from -edges (no
// Consul), and pins the JSON of every read verb in golden files.
func TestCatalogCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry and edge binaries")
	}
	reg, _, startEdge := registryWithEdge(t)
	dir := t.TempDir()
	pub, priv, err := model.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.pem")
	os.WriteFile(keys, model.MarshalPublicKey(pub), 0o644)
	// v10 is published before v2: versions lists by creation, not name.
	for i, v := range []string{"v10", "v2", "v3"} {
		data := testenv.TinyArtifact(t, 1, []float64{0.9, 0.92, 0.5}[i])
		nv := wire.NewVersion{Labels: map[string]string{"team": "ml"}}
		if v == "v2" {
			sig, err := model.Sign(priv, model.Digest(data))
			if err != nil {
				t.Fatal(err)
			}
			nv.Signature = &sig
		}
		if _, err := reg.Publisher.Publish(context.Background(), "demo", v, strings.NewReader(string(data)), int64(len(data)), nv); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Setenv("SENTCTL_REGISTRY", reg.URL)
	t.Setenv("SENTCTL_TOKEN", registrytest.AdminToken)
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := sentctl(t, args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	run(0, "promote", "--model", "demo", "--version", "v10")
	startEdge()

	if out := run(0, "versions", "--model", "demo"); !regexp.MustCompile(`(?s)v10 .*v2 .*v3 `).MatchString(out) {
		t.Errorf("versions not in creation order:\n%s", out)
	}
	run(0, "edit", "--model", "demo", "--version", "v3", "--label", "stage=rejected", "--unlabel", "team", "--description", "too weak")
	if out := run(0, "versions", "--model", "demo", "--label", "team=ml"); strings.Contains(out, "v3 ") || !strings.Contains(out, "v2 ") {
		t.Errorf("versions --label team=ml:\n%s", out)
	}
	out := run(0, "show", "--model", "demo", "--version", "v10")
	if !strings.Contains(out, "served     production: target everywhere") || !strings.Contains(out, "accuracy 0.9000") || !strings.Contains(out, "unsigned") {
		t.Errorf("show v10:\n%s", out)
	}
	// This registry has no trusted keys: v2's signature is kept, not verified.
	if out := run(0, "show", "--model", "demo", "--version", "v2"); !strings.Contains(out, "not trusted here") {
		t.Errorf("show v2:\n%s", out)
	}
	// pull: verified with the right key, refused (and no file left) with another.
	dst := filepath.Join(dir, "v2.sapm")
	if out := run(0, "pull", "--model", "demo", "--version", "v2", "--out", dst, "--trusted-keys", keys); !strings.Contains(out, "verified with --trusted-keys") {
		t.Errorf("pull:\n%s", out)
	}
	other, _, _ := model.GenerateKey()
	otherKeys := filepath.Join(dir, "other.pem")
	os.WriteFile(otherKeys, model.MarshalPublicKey(other), 0o644)
	os.Remove(dst)
	run(1, "pull", "--model", "demo", "--version", "v2", "--out", dst, "--trusted-keys", otherKeys)
	if _, err := os.Stat(dst); err == nil {
		t.Error("a pull whose signature failed left its file")
	}
	// Dry runs: v3 (0.50) against v10 (0.90) would be refused, exit 4.
	out = run(4, "promote", "--model", "demo", "--version", "v3", "--dry-run")
	if !strings.Contains(out, "gate      refused") || !strings.Contains(out, "candidate -0.4000") || !strings.Contains(out, "*         v10 -> v3") {
		t.Errorf("dry run of v3:\n%s", out)
	}
	if out := run(0, "promote", "--model", "demo", "--version", "v2", "--regions", "eu-west", "--dry-run"); !strings.Contains(out, "eu-west   - -> v2") || !strings.Contains(out, "gate      passed") {
		t.Errorf("dry run of v2:\n%s", out)
	}
	run(4, "promote", "--model", "demo", "--version", "v3")
	// --wait: the edge, known from -edges, serves the target.
	if out := run(0, "promote", "--model", "demo", "--version", "v2", "--regions", "eu-west", "--wait", "--timeout", "30s"); !strings.Contains(out, "converged") {
		t.Errorf("promote --wait:\n%s", out)
	}
	if out := run(0, "status", "--model", "demo"); !strings.Contains(out, "converged=true") || !strings.Contains(out, "serves v2") {
		t.Errorf("status without Consul:\n%s", out)
	}

	// The JSON of every read verb.
	for name, args := range map[string][]string{
		"models":   {"models"},
		"versions": {"versions", "--model", "demo"},
		"show":     {"show", "--model", "demo", "--version", "v3"},
		"channels": {"channels", "--model", "demo"},
		"history":  {"history", "--model", "demo"},
		"status":   {"status", "--model", "demo"},
		"audit":    {"audit", "--model", "demo", "--action", "edit_version"},
	} {
		golden(t, name, run(0, append(args, "-o", "json")...))
	}
	// The rollout and webhook read verbs, on a rollout aborted at once.
	run(0, "rollout", "start", "--model", "demo", "--version", "v10", "--regions", "eu-west", "--interval", "1h", "--reason", "golden", "--force")
	run(0, "rollout", "abort", "--model", "demo", "--reason", "golden")
	hook := regexp.MustCompile(`subscribed (wh_\w+)`).FindStringSubmatch(run(0, "webhook", "add", "--url", "http://127.0.0.1:1/hook", "--events", "channel.moved"))
	if hook == nil {
		t.Fatal("webhook add printed no id")
	}
	for name, args := range map[string][]string{
		"rollout-status":     {"rollout", "status", "--model", "demo"},
		"rollout-list":       {"rollout", "list"},
		"webhook-list":       {"webhook", "list"},
		"webhook-deliveries": {"webhook", "deliveries", "--id", hook[1]}, // none yet: the events came before it
	} {
		golden(t, name, run(0, append(args, "-o", "json")...))
	}
	// Bad input.
	run(2, "versions", "--model", "demo", "-o", "yaml")
	run(2, "edit", "--model", "demo", "--version", "v3")
	run(1, "edit", "--model", "demo", "--version", "v3", "--label", strings.Repeat("k", 65)+"=v")
	run(1, "show", "--model", "demo", "--version", "nope")
	run(1, "delete", "--model", "demo", "--version", "v2") // a target: refused
}
