package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

// readmeBlock is the README's shell block under heading.
func readmeBlock(t *testing.T, readme, heading string) string {
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in the README", heading)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(after, "```\n")
	if !ok || !ok2 {
		t.Fatalf("no sh block under %q", heading)
	}
	return block
}

// TestREADME runs the README's "Publish and promote a model" block as
// written, in a directory of its own, against the local stack (`make
// run`) started there on free ports. Its `make build` is the real one,
// building into that directory's bin/; the training files it names are
// written first.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the local stack")
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	block := readmeBlock(t, filepath.Join(repo, "README.md"), "## Publish and promote a model")
	realMake, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	work, stubs := t.TempDir(), t.TempDir()
	// `make build` in the block: the repository's Makefile, binaries here.
	stub := fmt.Sprintf("#!/bin/sh\nexec %q -C %q \"$@\" BIN=%q\n", realMake, repo, filepath.Join(work, "bin"))
	if err := os.WriteFile(filepath.Join(stubs, "make"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	var train strings.Builder
	train.WriteString("text\tlabel\n")
	for i := 0; i < 60; i++ {
		train.WriteString([]string{"a great film\t1\n", "an awful film\t0\n", "truly moving\t1\n", "truly dull\t0\n"}[i%4])
	}
	for _, f := range []string{"my-train.tsv", "my-dev.tsv"} {
		os.WriteFile(filepath.Join(work, f), []byte(train.String()), 0o644)
	}
	build := exec.Command(filepath.Join(stubs, "make"), "build")
	build.Dir = work
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	ports, err := testenv.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	stack := exec.Command(filepath.Join(work, "bin", "stack"), "-bin", "bin", "-dir", ".run", "-onnxruntime-lib", testenv.ONNXRuntime(t),
		"-registry-port", fmt.Sprint(ports[0]), "-geo-port", fmt.Sprint(ports[1]), "-edge-port", fmt.Sprint(ports[2]), "-edge-grpc-port", fmt.Sprint(apart(ports[2], ports[3:])), "-geo-grpc-port", fmt.Sprint(ports[5]))
	stack.Dir = work
	stdout, _ := stack.StdoutPipe()
	stack.Stderr = stack.Stdout
	if err := stack.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stack.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { stack.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			stack.Process.Kill()
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "is running") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the stack exited before it was running")
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the stack was not running within 90s")
	}
	script := filepath.Join(work, "readme.sh")
	os.WriteFile(script, []byte("set -e\n"+block), 0o644)
	cmd := exec.Command("bash", script)
	cmd.Dir = work
	env := append(os.Environ(), "PATH="+stubs+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, v := range []string{"SENTCTL_REGISTRY", "SENTCTL_TOKEN", "SENTCTL_PROFILE", "SENTCTL_CONFIG", "SENTCTL_CA", "SENTCTL_CERT", "SENTCTL_KEY"} {
		env = append(env, v+"=")
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("the README's block:\n%s", out)
	if err != nil {
		t.Fatalf("the README's block failed: %v", err)
	}
	for _, want := range []string{"published sentiment/v2", "verified by the registry", "gate      passed", "converged: every edge",
		"eu-west=v2", "serves v2", "revision 3: global=v1 eu-west=v1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the block's output lacks %q", want)
		}
	}

	// "Bring your own ONNX model", against this stack's router port, with
	// the repository's examples where the block names them.
	onnx := readmeBlock(t, filepath.Join(repo, "README.md"), "## Bring your own ONNX model")
	onnx = strings.ReplaceAll(onnx, "127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(script, []byte("set -e\n"+onnx), 0o644)
	cmd = exec.Command("bash", script)
	cmd.Dir, cmd.Env = work, env
	out, err = cmd.CombinedOutput()
	t.Logf("the README's ONNX block:\n%s", out)
	if err != nil {
		t.Fatalf("the README's ONNX block failed: %v", err)
	}
	for _, want := range []string{"published sentiment/imdb3", "onnx, labels negative,neutral,positive", `"neutral":`, `"version":"imdb3"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the ONNX block's output lacks %q", want)
		}
	}
}
