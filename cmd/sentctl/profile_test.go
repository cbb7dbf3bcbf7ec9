package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestProfiles: the config file's profiles name a registry and a token
// file; a flag or SENTCTL_* variable beats them; a bad file or name is a
// usage error.
func TestProfiles(t *testing.T) {
	srv := startRegistry(t)
	registrytest.Publish(t, srv.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0))
	d := t.TempDir()
	token := filepath.Join(d, "reader.token")
	os.WriteFile(token, []byte(registrytest.ReaderToken+"\n"), 0o600)
	cfg := filepath.Join(d, "config.json")
	os.WriteFile(cfg, []byte(`{"current": "nowhere", "profiles": {
		"nowhere": {"registry": "http://127.0.0.1:1"},
		"test": {"registry": "`+srv.URL+`", "token_file": "`+token+`"}}}`), 0o600)
	for _, v := range []string{"SENTCTL_REGISTRY", "SENTCTL_TOKEN", "SENTCTL_PROFILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("SENTCTL_CONFIG", cfg)
	if code, out, errOut := sentctl(t, "models", "--profile", "test"); code != 0 || strings.TrimSpace(out) != "demo" {
		t.Errorf("--profile test: exit %d %q %s", code, out, errOut)
	}
	t.Setenv("SENTCTL_PROFILE", "test")
	if code, out, _ := sentctl(t, "models"); code != 0 || strings.TrimSpace(out) != "demo" {
		t.Errorf("SENTCTL_PROFILE=test: exit %d %q", code, out)
	}
	// The file's current profile points nowhere; the flag beats it.
	t.Setenv("SENTCTL_PROFILE", "")
	if code, _, _ := sentctl(t, "models"); code != 1 {
		t.Errorf("the current profile (nowhere) answered: exit %d", code)
	}
	t.Setenv("SENTCTL_TOKEN", registrytest.ReaderToken)
	if code, out, _ := sentctl(t, "models", "--registry", srv.URL); code != 0 || strings.TrimSpace(out) != "demo" {
		t.Errorf("--registry over the profile: exit %d %q", code, out)
	}
	if code, _, errOut := sentctl(t, "models", "--profile", "prod"); code != 2 || !strings.Contains(errOut, `no profile "prod"`) {
		t.Errorf("unknown profile: exit %d %s", code, errOut)
	}
	// A token file others may read is refused, like ssh's keys.
	t.Setenv("SENTCTL_TOKEN", "")
	os.Chmod(token, 0o644)
	if code, _, errOut := sentctl(t, "models", "--profile", "test"); code != 2 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("a token file of mode 0644: exit %d %s, want 2 naming chmod 600", code, errOut)
	}
	os.Chmod(token, 0o600)
	// The token goes in clear text only to this machine, or when asked.
	t.Setenv("SENTCTL_TOKEN", registrytest.ReaderToken)
	for _, u := range []string{"http://registry.example:8081", srv.URL + ",http://[::1%251]:1"} {
		if code, _, errOut := sentctl(t, "models", "--registry", u); code != 2 || !strings.Contains(errOut, "clear text") {
			t.Errorf("a token to %s: exit %d %s, want 2 refusing clear text", u, code, errOut)
		}
	}
	// 0.0.0.0 is no loopback name, yet Linux dials this machine for it:
	// the override is tested without a packet leaving.
	anyAddr := strings.Replace(srv.URL, "127.0.0.1", "0.0.0.0", 1)
	if code, _, errOut := sentctl(t, "models", "--registry", anyAddr); code != 2 || !strings.Contains(errOut, "clear text") {
		t.Errorf("a token to %s: exit %d %s, want 2 refusing clear text", anyAddr, code, errOut)
	}
	if code, out, errOut := sentctl(t, "models", "--registry", anyAddr, "--allow-plain-http"); code != 0 || strings.TrimSpace(out) != "demo" {
		t.Errorf("--allow-plain-http: exit %d %q %s", code, out, errOut)
	}
	if code, out, _ := sentctl(t, "models", "--registry", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)); code != 0 || strings.TrimSpace(out) != "demo" {
		t.Errorf("plain http to localhost: exit %d %q", code, out)
	}
	os.WriteFile(cfg, []byte(`{"profiles": {"x": {"registy": "typo"}}}`), 0o600)
	if code, _, errOut := sentctl(t, "models"); code != 2 || !strings.Contains(errOut, "registy") {
		t.Errorf("a misspelt key: exit %d %s", code, errOut)
	}
}
