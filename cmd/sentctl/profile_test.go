package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/store/dir"
)

// TestProfiles: the config file's profiles name a registry and a token
// file; a flag or SENTCTL_* variable beats them; a bad file or name is a
// usage error.
func TestProfiles(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := registrytest.Start(t, st, registry.Config{}, admin.Config{})
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
	os.WriteFile(cfg, []byte(`{"profiles": {"x": {"registy": "typo"}}}`), 0o600)
	if code, _, errOut := sentctl(t, "models"); code != 2 || !strings.Contains(errOut, "registy") {
		t.Errorf("a misspelt key: exit %d %s", code, errOut)
	}
}
