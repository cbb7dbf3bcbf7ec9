package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// chrome starts a headless Chromium (Debian's) at 1280×800 for the test.
func chrome(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make tools installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(alloc)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// shots is where the test saves its screenshots (SCREENSHOTS, else a
// temporary directory).
func shots(t *testing.T) string {
	if dir := os.Getenv("SCREENSHOTS"); dir != "" {
		return dir
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var text string
	for time.Now().Before(deadline) {
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if text = got; err == nil && strings.Contains(text, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s does not show %q within %v: %q", sel, want, within, text)
}

// TestConsoleInChromium drives the console in a real headless Chromium
// against the registry binary and two edges it knows from -edges: log
// in, see the models, promote v2 in eu-west through the confirmation
// (which shows the gate's verdict), see the region turn to v2 without a
// reload, roll back, see the audit entries; a reader gets no controls,
// and a forged POST without the CSRF token gets 403.
func TestConsoleInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium, the registry and two edges")
	}
	ctx := chrome(t)
	ports, err := testenv.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	edges := map[string]string{"eu-west": fmt.Sprintf("127.0.0.1:%d", ports[1]), "us-east": fmt.Sprintf("127.0.0.1:%d", ports[2])}
	geo := fmt.Sprintf("127.0.0.1:%d", ports[3])
	reg := registrytest.StartBinary(t, registrytest.Binary{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Args: []string{"-edges", "eu-west=http://" + edges["eu-west"] + ",us-east=http://" + edges["us-east"], "-geo", "http://" + geo}})
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0.9))
	registrytest.Publish(t, reg.Publisher, "demo", "v2", testenv.TinyArtifact(t, 2, 0.9))
	if _, err := reg.Admin.Promote(context.Background(), "demo", "production", regclient.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	edgeBin := testenv.GoBinary(t, "./cmd/edge")
	for region, addr := range edges {
		testenv.StartHTTPService(t, "edge-"+region, edgeBin, []string{"-listen", addr, "-region", region, "-model", "demo",
			"-registry", reg.URL, "-cache-dir", t.TempDir(), "-shutdown-delay", "0s"},
			[]string{"EDGE_REGISTRY_TOKEN=" + registrytest.ReaderToken}, "http://"+addr+"/health/ready")
	}
	testenv.StartHTTPService(t, "geo", testenv.GoBinary(t, "./cmd/geo"), []string{"-listen", geo, "-static",
		"eu-west=" + edges["eu-west"] + ",us-east=" + edges["us-east"], "-default-region", "eu-west", "-shutdown-delay", "0s", "-rate-limit", "0"},
		nil, "http://"+geo+"/health/live")
	dir := shots(t)
	euRow := `tr[data-region="eu-west"] td:last-child`

	// Log in as the admin and see the models.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(reg.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), registrytest.AdminToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/models/demo"]`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, dir, "models")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href="/ui/models/demo"]`)), chromedp.WaitVisible(chromedp.CSS(euRow))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, euRow, "v1", 10*time.Second)
	screenshot(t, ctx, dir, "model")

	// Promote v2 in eu-west: the confirmation shows the gate's verdict.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("promote-version"), "v2"),
		chromedp.SendKeys(chromedp.ID("promote-region"), "eu-west"),
		chromedp.SendKeys(chromedp.ID("promote-reason"), "console test"),
		chromedp.Click(chromedp.ID("promote")),
		chromedp.WaitVisible(chromedp.ID("confirm")),
	); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#gate", "passed", 5*time.Second)
	screenshot(t, ctx, dir, "confirm")
	// After confirming, mark the page: the region must turn to v2 on this
	// very page, through the live update, not a reload.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS(euRow)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.unreloaded = true`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, euRow, "v2", 15*time.Second)
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.unreloaded === true`)); err != nil || !still {
		t.Errorf("the page was reloaded to show the new version (%v)", err)
	}
	screenshot(t, ctx, dir, "converged")

	// Roll back eu-west.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("rollback-region"), "eu-west"),
		chromedp.Click(chromedp.ID("rollback")),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.CSS(euRow)),
	); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, euRow, "v1", 15*time.Second)

	// The audit trail names the principal.
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/audit?model=demo"), chromedp.WaitVisible(chromedp.CSS("table"))); err != nil {
		t.Fatal(err)
	}
	audit, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table")))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, dir, "audit")
	for _, want := range []string{"promote", "rollback", "alice", "console test"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit page lacks %q:\n%s", want, audit)
		}
	}

	// The regions as the geo router sees them.
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/regions"), chromedp.WaitVisible(chromedp.CSS(`tr[data-region="eu-west"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-region="eu-west"]`, "closed", 10*time.Second)
	waitText(t, ctx, `tr[data-region="us-east"]`, edges["us-east"], 10*time.Second)
	screenshot(t, ctx, dir, "regions")

	// A forged POST from the page with the admin's session cookie but
	// without the CSRF token.
	code, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/ui/models/demo/promote/confirm", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "version=v2&region=eu-west"}).then(r => r.status)`,
		chromedp.EvalAwaitPromise))
	if err != nil || code != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d (%v), want 403", code, err)
	}

	// A reader sees the state but no action controls.
	reader := chrome(t)
	if err := chromedp.Do(reader,
		chromedp.Navigate(reg.URL+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), registrytest.ReaderToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/models/demo"]`)),
		chromedp.Navigate(reg.URL+"/ui/models/demo"),
		chromedp.WaitVisible(chromedp.CSS(euRow)),
	); err != nil {
		t.Fatal(err)
	}
	buttons, err := chromedp.Run(reader, chromedp.Evaluate[int](`document.querySelectorAll("#promote, #rollback, form.action").length`))
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 {
		t.Errorf("a reader sees %d action controls", buttons)
	}
	t.Logf("screenshots in %s", dir)
}
