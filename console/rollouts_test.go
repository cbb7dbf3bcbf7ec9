package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/console"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/rollout"
	"github.com/sentimentpro/sentiment/store/dir"
)

// TestConsoleRollouts starts a rollout from the model page through its
// confirmation (with the gate's verdict), pauses, resumes and aborts it,
// and sees each on the rollout page and its timeline; a reader gets the
// page without the controls.
func TestConsoleRollouts(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(registry.Config{Store: st, Logger: registrytest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rollout.New(rollout.Config{Registry: r, Store: st, ID: "test", Logger: registrytest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := registry.ParseTokens(registrytest.Tokens)
	api := registry.NewAPI(r, tokens, registrytest.QuietLogger)
	admin.Mount(api, admin.Config{Rollouts: m})
	hs := httptest.NewServer(api)
	defer hs.Close()
	reg := struct{ Publisher, Admin *regclient.Client }{
		&regclient.Client{BaseURL: hs.URL, Token: registrytest.PublisherToken}, &regclient.Client{BaseURL: hs.URL, Token: registrytest.AdminToken}}
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0.9))
	registrytest.Publish(t, reg.Publisher, "demo", "v2", testenv.TinyArtifact(t, 1, 0.91))
	if _, err := reg.Admin.Promote(context.Background(), "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(console.New(console.Config{API: api}))
	defer srv.Close()
	b := newBrowser(t, srv)
	b.login(registrytest.AdminToken)
	_, page := b.do("GET", "/ui/models/demo", nil)
	if !strings.Contains(page, `id="rollout-start"`) {
		t.Fatal("no rollout form for an admin")
	}
	form := url.Values{"csrf": {field(page, "csrf")}, "version": {"v2"}, "regions": {"eu-west,us-east"}, "steps": {"10,100"}, "interval": {"1h"}, "reason": {"canary"}}
	resp, page := b.do("POST", "/ui/models/demo/rollout/start", form)
	if resp.StatusCode != 200 || !strings.Contains(page, `<dd id="gate">passed</dd>`) || !strings.Contains(page, "<strong>eu-west</strong> <strong>us-east</strong>") {
		t.Fatalf("confirmation: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.do("POST", "/ui/models/demo/rollout/start/confirm", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	_, page = b.do("GET", "/ui/models/demo/rollout", nil)
	if !strings.Contains(page, "<strong>running</strong>: wave 0, step 0, candidate at 10% in eu-west") {
		t.Fatalf("rollout page:\n%s", page)
	}
	for _, op := range []struct{ op, want string }{{"pause", "<strong>paused</strong>"}, {"resume", "<strong>running</strong>"}, {"abort", "<strong>aborted</strong>"}} {
		form := url.Values{"csrf": {field(page, "csrf")}, "reason": {"test " + op.op}}
		if resp, confirm := b.do("POST", "/ui/models/demo/rollout/op/"+op.op, form); resp.StatusCode != 200 || !strings.Contains(confirm, `id="confirm"`) {
			t.Fatalf("%s asks no confirmation: %d", op.op, resp.StatusCode)
		}
		if _, page = b.do("GET", "/ui/models/demo/rollout", nil); strings.Contains(page, op.want) && op.op != "resume" {
			t.Fatalf("%s took effect before the confirmation", op.op)
		}
		resp, _ := b.do("POST", "/ui/models/demo/rollout/op/"+op.op+"/confirm", form)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: %d", op.op, resp.StatusCode)
		}
		if _, page = b.do("GET", "/ui/models/demo/rollout", nil); !strings.Contains(page, op.want) {
			t.Fatalf("after %s:\n%s", op.op, page)
		}
	}
	if !strings.Contains(page, "<td>aborted</td>") {
		t.Errorf("the timeline lacks the aborted step:\n%s", page)
	}
	if _, list := b.do("GET", "/ui/rollouts", nil); !strings.Contains(list, `href="/ui/models/demo/rollout"`) || !strings.Contains(list, "aborted by alice: test abort") {
		t.Errorf("rollouts list:\n%s", list)
	}
	// Without the CSRF token, nothing happens.
	if resp, _ := b.do("POST", "/ui/models/demo/rollout/op/pause/confirm", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a rollout operation without CSRF: %d", resp.StatusCode)
	}
	reader := newBrowser(t, srv)
	reader.login(registrytest.ReaderToken)
	_, page = reader.do("GET", "/ui/models/demo", nil)
	if strings.Contains(page, `id="rollout-start"`) || strings.Contains(page, `class="action"`) {
		t.Error("a reader gets action controls")
	}
}
