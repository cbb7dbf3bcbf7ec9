package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestWebhookCLI subscribes an endpoint that fails its first delivery,
// reads the delivery log, redelivers and unsubscribes, against the
// registry binary.
func TestWebhookCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry binary")
	}
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		case 4:
			http.Error(w, "no more", http.StatusGone)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer hook.Close()
	reg := registrytest.StartBinary(t, registrytest.Binary{Args: []string{"-webhook-tick", "100ms", "-webhook-retry-schedule", "200ms"}})
	t.Setenv("SENTCTL_REGISTRY", reg.URL)
	t.Setenv("SENTCTL_TOKEN", registrytest.AdminToken)

	code, out, errOut := sentctl(t, "webhook", "add", "--url", hook.URL+"/ci", "--events", "version.published", "--description", "ci")
	id := regexp.MustCompile(`subscribed (wh_[0-9a-f]+)`).FindStringSubmatch(out)
	if code != 0 || id == nil || !strings.Contains(out, "secret (shown once") || !strings.Contains(out, "whsec_") {
		t.Fatalf("webhook add: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := sentctl(t, "webhook", "list"); code != 0 || !strings.Contains(out, id[1]) || strings.Contains(out, "whsec_") {
		t.Fatalf("webhook list: exit %d\n%s", code, out)
	}
	time.Sleep(300 * time.Millisecond) // the dispatcher's cursor
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0))
	var msg []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, out, _ = sentctl(t, "webhook", "deliveries", "--id", id[1]); code != 0 {
			t.Fatalf("deliveries: exit %d", code)
		}
		msg = regexp.MustCompile(`(msg_\S+)\s+version.published\s+delivered\s+2 attempts`).FindStringSubmatch(out)
		if msg != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered delivery after a failed attempt within 15s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, errOut := sentctl(t, "webhook", "redeliver", "--id", id[1], "--delivery", msg[1]); code != 0 || !strings.Contains(out, "queued again") {
		t.Fatalf("redeliver: exit %d %s%s", code, out, errOut)
	}
	redeliverBy := time.Now().Add(20 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(redeliverBy) {
			t.Fatal("no redelivery")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A 410 disables the subscription; list shows it, enable undoes it.
	registrytest.Publish(t, reg.Publisher, "demo", "v2", testenv.TinyArtifact(t, 2, 0))
	for {
		code, out, _ = sentctl(t, "webhook", "list")
		if code == 0 && strings.Contains(out, "disabled since") && strings.Contains(out, "410 Gone") && strings.Contains(out, "webhook enable --id "+id[1]) {
			break
		}
		if time.Now().After(redeliverBy) {
			t.Fatalf("not disabled by a 410:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, errOut := sentctl(t, "webhook", "enable", "--id", id[1]); code != 0 || !strings.Contains(out, "enabled "+id[1]) {
		t.Fatalf("enable: exit %d %s%s", code, out, errOut)
	}
	if code, out, _ := sentctl(t, "webhook", "list"); code != 0 || strings.Contains(out, "disabled") {
		t.Fatalf("list after enable: exit %d\n%s", code, out)
	}
	// A new secret, the old one signing beside it for an hour; list says so
	// and shows neither.
	code, out, errOut = sentctl(t, "webhook", "rotate-secret", "--id", id[1], "--grace", "1h")
	if code != 0 || !strings.Contains(out, "new secret for "+id[1]) || !strings.Contains(out, "whsec_") || !strings.Contains(out, "the old secret signs beside it until") {
		t.Fatalf("rotate-secret: exit %d %s%s", code, out, errOut)
	}
	if code, out, _ := sentctl(t, "webhook", "list"); code != 0 || !strings.Contains(out, "secret rotated") || strings.Contains(out, "whsec_") {
		t.Fatalf("list after rotate-secret: exit %d\n%s", code, out)
	}
	if code, out, _ := sentctl(t, "webhook", "rm", "--id", id[1]); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("rm: exit %d %s", code, out)
	}
	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"webhook", "add"}, 2, "missing --url"},
		{[]string{"webhook", "add", "--url", "ftp://x/y"}, 1, "http(s) URL"},
		{[]string{"webhook", "add", "--url", "https://x/y", "--events", "model.exploded"}, 1, "unknown event"},
		{[]string{"webhook", "rm", "--id", "../etc"}, 1, "not a wh_"},
		{[]string{"webhook", "rm", "--id", id[1]}, 1, "404"},
		{[]string{"webhook", "deliveries", "--id", "wh_nothere"}, 1, "404"},
		{[]string{"webhook", "enable", "--id", "wh_nothere"}, 1, "404"},
		{[]string{"webhook", "enable"}, 2, "missing --id"},
		{[]string{"webhook", "rotate-secret"}, 2, "missing --id"},
		{[]string{"webhook", "rotate-secret", "--id", "wh_nothere"}, 1, "404"},
		{[]string{"webhook", "ring"}, 2, "unknown verb"},
	} {
		if code, _, errOut := sentctl(t, bad.args...); code != bad.code || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d %q, want %d with %q", bad.args, code, errOut, bad.code, bad.want)
		}
	}
}
