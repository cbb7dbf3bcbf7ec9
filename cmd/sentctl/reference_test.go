package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIReference keeps docs/CLI.md what the command definitions say
// (-update rewrites it).
func TestCLIReference(t *testing.T) {
	for _, v := range []string{"SENTCTL_REGISTRY", "SENTCTL_CA", "SENTCTL_CERT", "SENTCTL_KEY", "SENTCTL_TOKEN", "SENTCTL_PROFILE", "SENTCTL_CONFIG"} {
		t.Setenv(v, "")
	}
	got := reference()
	path := filepath.Join("..", "..", "docs", "CLI.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("docs/CLI.md is not what the commands define: run go test ./cmd/sentctl -run TestCLIReference -update")
	}
	for _, name := range commandNames() {
		if !strings.Contains(got, "## sentctl "+name+"\n") {
			t.Errorf("no section for %s", name)
		}
	}
	if !strings.Contains(got, "--dry-run") && !strings.Contains(got, "-dry-run") {
		t.Error("the reference lacks promote's flags")
	}
}

// TestCompletion runs the bash completion in bash, and checks the zsh and
// fish scripts' syntax when those shells are installed.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := sentctl(t, "completion", shell)
		if code != 0 || out == "" {
			t.Fatalf("completion %s: exit %d %s", shell, code, errOut)
		}
		script := filepath.Join(dir, "sentctl."+shell)
		os.WriteFile(script, []byte(out), 0o644)
		bin, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s not installed: its script is not checked", shell)
			continue
		}
		if shell != "bash" {
			if out, err := exec.Command(bin, "-n", script).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
			continue
		}
		for words, want := range map[string]string{
			"sentctl rol|1":                  "rollback rollout",
			"sentctl rollout st|2":           "start status",
			"sentctl rollout start --ste|3":  "--steps",
			"sentctl promote --dry|2":        "--dry-run",
			"sentctl versions --model m -|4": "-o",
		} {
			w, cword, _ := strings.Cut(words, "|")
			probe := "source " + script + "; COMP_WORDS=(" + w + "); COMP_CWORD=" + cword + "; _sentctl; echo \"${COMPREPLY[@]}\""
			out, err := exec.Command(bin, "-c", probe).CombinedOutput()
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("completing %q: %q (%v), want %q", w, out, err, want)
			}
		}
	}
	if code, _, _ := sentctl(t, "completion", "powershell"); code != 2 {
		t.Errorf("an unknown shell: exit %d, want 2", code)
	}
}
