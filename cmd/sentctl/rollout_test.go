package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestRolloutCLI drives `sentctl rollout` against the registry binary,
// which reads one edge's metrics from its -edges list (the way
// `make run` wires it), under steady traffic to that edge.
func TestRolloutCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry and edge binaries")
	}
	reg, edge, startEdge := registryWithEdge(t, "-rollout-tick", "200ms", "-rollout-lease", "2s")
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0))
	registrytest.Publish(t, reg.Publisher, "demo", "v2", testenv.TinyArtifact(t, 1, 0.9))
	registrytest.Publish(t, reg.Publisher, "demo", "v3", testenv.FlippedArtifact(t, 1))
	if _, err := reg.Admin.Promote(context.Background(), "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	startEdge()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("POST", "http://"+edge+"/v1/predict", strings.NewReader(`{"text":"a great film"}`))
				req.Header.Set("X-Routing-Key", fmt.Sprint(rand.Int()))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	t.Setenv("SENTCTL_REGISTRY", reg.URL)
	t.Setenv("SENTCTL_TOKEN", registrytest.AdminToken)
	fast := []string{"--model", "demo", "--regions", "eu-west", "--steps", "10,100", "--interval", "1s", "--min-requests", "10", "--min-shadow", "10", "--poll", "100ms"}

	code, out, errOut := sentctl(t, append([]string{"rollout", "start", "--version", "v2", "--wait"}, fast...)...)
	if code != 0 || !strings.Contains(out, "demo/production v2: succeeded") || strings.Count(out, "passed") != 2 {
		t.Fatalf("good rollout --wait: exit %d\n%s%s", code, out, errOut)
	}
	// v3 records no accuracy: production's quality gate refuses it, unless
	// forced.
	if code, _, errOut := sentctl(t, append([]string{"rollout", "start", "--version", "v3"}, fast...)...); code != 4 || !strings.Contains(errOut, "quality gate") {
		t.Fatalf("ungated rollout: exit %d %s", code, errOut)
	}
	// v3's labels are flipped: it breaches the label share and the shadow
	// disagreement both, and which the controller sees first depends on
	// how soon the shadow has scored its ten texts.
	code, out, errOut = sentctl(t, append([]string{"rollout", "start", "--version", "v3", "--force", "--wait"}, fast...)...)
	flipped := strings.Contains(out, "shadow disagreement") || strings.Contains(out, `label "negative"'s share moved`) ||
		strings.Contains(out, `label "positive"'s share moved`)
	if code != 1 || !strings.Contains(errOut, "rolled_back") || !strings.Contains(out, "breached") || !flipped {
		t.Fatalf("flipped rollout --wait: exit %d\n%s%s", code, out, errOut)
	}
	// Operators pause, resume and abort; each is in the audit trail.
	slow := []string{"--version", "v1", "--model", "demo", "--regions", "eu-west", "--interval", "1h", "--force"}
	for _, step := range []struct {
		args []string
		want string
	}{
		{append([]string{"rollout", "start"}, slow...), "v1: running, wave 1/1 (eu-west) step 1/4 at 5%"},
		{[]string{"rollout", "pause", "--model", "demo", "--reason", "lunch"}, "v1: paused"},
		{[]string{"rollout", "resume", "--model", "demo"}, "v1: running"},
		{[]string{"rollout", "abort", "--model", "demo", "--reason", "changed my mind"}, "v1: aborted"},
		{[]string{"rollout", "status", "--model", "demo"}, "aborted by alice: changed my mind"},
		{[]string{"rollout", "list"}, "demo/production v1: aborted"},
	} {
		if code, out, errOut := sentctl(t, step.args...); code != 0 || !strings.Contains(out, step.want) {
			t.Fatalf("%v: exit %d, want %q in\n%s%s", step.args, code, step.want, out, errOut)
		}
	}
	if code, out, _ = sentctl(t, "audit", "--model", "demo"); code != 0 {
		t.Fatalf("audit: exit %d", code)
	}
	for _, action := range []string{"rollout_start", "rollout_step", "rollout_promote", "rollout_rollback", "rollout_pause", "rollout_resume", "rollout_abort"} {
		if !strings.Contains(out, action) {
			t.Errorf("no %s in the audit trail:\n%s", action, out)
		}
	}
	// Bad input: a clear message and a non-zero exit.
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rollout", "start", "--model", "demo", "--version", "v2"}, 2, "missing --regions"},
		{[]string{"rollout", "start", "--model", "demo", "--version", "v2", "--regions", " , "}, 2, "names no region"},
		{[]string{"rollout", "start", "--model", "demo", "--version", "v2", "--regions", "eu-west", "--steps", "5,x"}, 2, "--steps"},
		{[]string{"rollout", "start", "--model", "demo", "--version", "v2", "--regions", "eu-west", "--steps", "50,25,100"}, 1, "steps must rise"},
		{[]string{"rollout", "start", "--model", "demo", "--version", "nope", "--regions", "eu-west"}, 1, "404"},
		{[]string{"rollout", "abort", "--model", "demo"}, 1, "cannot abort the rollout: it is aborted"},
		{[]string{"rollout", "status", "--model", "other"}, 1, "no rollout"},
		{[]string{"rollout", "frobnicate"}, 2, "unknown verb"},
	} {
		if code, _, errOut := sentctl(t, bad.args...); code != bad.code || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d %q, want %d with %q", bad.args, code, errOut, bad.code, bad.want)
		}
	}
}

// registryWithEdge runs the registry binary with args, knowing one
// eu-west edge from -edges as make run wires it; startEdge runs that
// edge (model demo, no rate limit) once the registry has a model for it.
func registryWithEdge(t *testing.T, args ...string) (reg *registrytest.Server, edge string, startEdge func()) {
	t.Helper()
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	edge = fmt.Sprintf("127.0.0.1:%d", ports[1])
	reg = registrytest.StartBinary(t, registrytest.Binary{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Args: append([]string{"-edges", "eu-west=http://" + edge}, args...)})
	return reg, edge, func() {
		testenv.StartEdge(t, testenv.Edge{Name: "edge", Addr: edge, Region: "eu-west", Model: "demo", Registry: reg.URL,
			Token: registrytest.ReaderToken, TrustedProxies: "127.0.0.1/32"})
	}
}
