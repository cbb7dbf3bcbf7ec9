package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
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

// logIn logs in to the console at base with token and waits for the
// models page.
func logIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/models/demo"]`)),
	); err != nil {
		t.Fatal(err)
	}
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

// startRig runs the registry binary (with args), two edges it knows from
// -edges and the geo router, with demo v1 and v2 published and v1 in
// production.
func startRig(t *testing.T, args ...string) (reg *registrytest.Server, edges map[string]string, geo string) {
	t.Helper()
	ports, err := testenv.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	edges = map[string]string{"eu-west": fmt.Sprintf("127.0.0.1:%d", ports[1]), "us-east": fmt.Sprintf("127.0.0.1:%d", ports[2])}
	geo = fmt.Sprintf("127.0.0.1:%d", ports[3])
	reg = registrytest.StartBinary(t, registrytest.Binary{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Args: append([]string{"-edges", "eu-west=http://" + edges["eu-west"] + ",us-east=http://" + edges["us-east"], "-geo", "http://" + geo}, args...)})
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0.9))
	registrytest.Publish(t, reg.Publisher, "demo", "v2", testenv.TinyArtifact(t, 2, 0.9))
	if _, err := reg.Admin.Promote(context.Background(), "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	for region, addr := range edges {
		testenv.StartEdge(t, testenv.Edge{Addr: addr, Region: region, Model: "demo", Registry: reg.URL, Token: registrytest.ReaderToken,
			RateLimit: 100, TrustedProxies: "127.0.0.1/32"})
	}
	testenv.StartGeo(t, testenv.Geo{Addr: geo, Static: "eu-west=" + edges["eu-west"] + ",us-east=" + edges["us-east"], Default: "eu-west",
		Args: []string{"-max-conns-per-ip", "256"}})
	return reg, edges, geo
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
	reg, edges, geo := startRig(t)
	dir := shots(t)
	euRow := `tr[data-region="eu-west"] td:last-child`

	// Log in as the admin and see the models.
	logIn(t, ctx, reg.URL, registrytest.AdminToken)
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

	// The model's page draws production's moves: the promote of v2 in
	// eu-west and the rollback, as marks on a timeline with a table.
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/models/demo"), chromedp.WaitVisible(chromedp.CSS(`figure[data-chart="timeline"]`))); err != nil {
		t.Fatal(err)
	}
	marks, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const f = document.querySelector('figure[data-chart="timeline"]');
		const v2 = [...f.querySelectorAll("rect.seg")].some(r => r.dataset.version === "v2");
		return f.querySelectorAll("line.mark.promote").length + " promotes, " + f.querySelectorAll("line.mark.rollback").length +
			" rollbacks, v2 drawn " + v2 + ", " + f.querySelectorAll("table tbody tr").length + " rows";
	})()`))
	if err != nil || !strings.Contains(marks, "1 rollbacks, v2 drawn true") || strings.HasPrefix(marks, "0 ") || strings.HasPrefix(marks, "1 promotes") {
		t.Errorf("the model's timeline: %s (%v); want the first promote, v2's, and the rollback", marks, err)
	}
	checkPage(t, ctx, "the model page with its timeline")
	screenshot(t, ctx, dir, "model-timeline")

	// The regions as the geo router sees them, with each one's last hour
	// drawn: traffic to eu-west shows in its requests-per-second chart.
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+geo+"/v1/predict", strings.NewReader(`{"text":"a fine film"}`))
		req.Header.Set("X-Region", "eu-west")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/regions"), chromedp.WaitVisible(chromedp.CSS(`tr[data-region="eu-west"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-region="eu-west"]`, "closed", 10*time.Second)
	waitText(t, ctx, `tr[data-region="us-east"]`, edges["us-east"], 10*time.Second)
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const rps = document.querySelector('section.region-charts[data-region="eu-west"] figure[data-chart="rps"]');
		const line = rps?.querySelector("polyline.stable");
		const charts = document.querySelectorAll("section.region-charts figure.chart");
		return line !== null && Number(line.dataset.top) < 216 && charts.length >= 6 &&
			[...charts].every(c => c.querySelector("table tbody tr") !== null);
	})()`))
	if err != nil || !drawn {
		t.Errorf("the regions page does not draw eu-west's traffic in its last hour, or a chart lacks its table (%v)", err)
	}
	checkPage(t, ctx, "the regions page")
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
	logIn(t, reader, reg.URL, registrytest.ReaderToken)
	if err := chromedp.Do(reader, chromedp.Navigate(reg.URL+"/ui/models/demo"), chromedp.WaitVisible(chromedp.CSS(euRow))); err != nil {
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

// focusOn presses Tab until the element matching sel has the focus (at
// most 80 times): it can be reached from the keyboard.
func focusOn(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	for range 80 {
		on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.activeElement !== null && document.activeElement.matches(%q)`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		if on {
			return
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("Tab never reaches %s", sel)
}

// typeAndEnter types text into the focused element and presses Enter.
func typeAndEnter(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.KeyEvent(text), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
}

// unlabelled lists the page's controls to which Chromium's accessibility
// tree gives no name: what a screen reader would announce as "edit
// text" or "button" and nothing more.
func unlabelled(t *testing.T, ctx context.Context) []string {
	t.Helper()
	tree, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, tg, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	})
	if err != nil {
		t.Fatal(err)
	}
	controls := map[string]bool{"textbox": true, "combobox": true, "button": true, "link": true, "checkbox": true, "radio": true}
	var bad []string
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		var role, name string
		json.Unmarshal(n.Role.Value, &role)
		if n.Name != nil {
			json.Unmarshal(n.Name.Value, &name)
		}
		if controls[role] && strings.TrimSpace(name) == "" {
			bad = append(bad, fmt.Sprintf("a %s (DOM node %d)", role, n.BackendDOMNodeID))
		}
	}
	return bad
}

// checkPage checks the page now shown: every control has a name, and
// nothing is wider than the window (no sideways scrolling).
func checkPage(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if bad := unlabelled(t, ctx); len(bad) > 0 {
		t.Errorf("%s: controls without a name: %v", name, bad)
	}
	over, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if over > 0 {
		t.Errorf("%s is %d px wider than the window", name, over)
	}
}

// waitJS waits until the expression is true on the page.
func waitJS(t *testing.T, ctx context.Context, expr, what string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
	}
	t.Fatalf("%s: not within %v", what, within)
}

// markUnreloaded marks the page, so that a later check can tell a live
// update from a reload.
func markUnreloaded(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.unreloaded = true`)); err != nil {
		t.Fatal(err)
	}
}

func checkUnreloaded(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.unreloaded === true`)); err != nil || !still {
		t.Errorf("the page was reloaded to show %s (%v)", what, err)
	}
}

// TestConsoleByKeyboard runs a rollout from the keyboard alone in
// Chromium: log in, open the model, start a rollout of v2 in eu-west
// through its confirmation, pause it and abort it, each through its
// confirmation; the rollout's figures and status follow on the open page
// without a reload. Every page's controls have names, and every page
// reads at 1280×800 and at phone width (390×844) without sideways
// scrolling.
func TestConsoleByKeyboard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium, the registry and two edges")
	}
	ctx := chrome(t)
	// Fast ticks so the rollout's figures reach its document within a
	// second (by default every half lease, 5 s).
	reg, edges, _ := startRig(t, "-rollout-tick", "200ms", "-rollout-lease", "1s")
	dir := shots(t)

	// Log in: the token field has the focus; Enter submits.
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatal(err)
	}
	checkPage(t, ctx, "the login page")
	screenshot(t, ctx, dir, "login")
	focusOn(t, ctx, "#token")
	typeAndEnter(t, ctx, registrytest.AdminToken)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/models/demo"]`))); err != nil {
		t.Fatal(err)
	}
	checkPage(t, ctx, "the models page")
	focusOn(t, ctx, `a[href="/ui/models/demo"]`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.ID("rollout-regions"))); err != nil {
		t.Fatal(err)
	}
	checkPage(t, ctx, "the model page")

	// Start the rollout: v2 is the newest, so the first choice; type the
	// canary region, keep the default steps and a 1m interval.
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("rollout-version"))); err != nil || v != "v2" {
		t.Fatalf("the rollout form offers %q first (%v), want v2", v, err)
	}
	focusOn(t, ctx, "#rollout-regions")
	typeAndEnter(t, ctx, "eu-west")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("confirm"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#gate", "passed", 5*time.Second)
	checkPage(t, ctx, "the rollout's confirmation")
	focusOn(t, ctx, "#confirm")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.ID("rollout-status"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#rollout-status", "running", 5*time.Second)
	waitText(t, ctx, "#rollout-status", "5% in eu-west", 5*time.Second)

	// Traffic in eu-west, as from many clients (the edge splits by
	// routing key, else by address; it allows one address 100 a minute):
	// the step's figures grow on the open page. They count from the
	// baseline the controller reads from the edges on its first tick of
	// the step (the figures appear then), so the traffic waits for it:
	// requests served before it are not the step's.
	waitJS(t, ctx, `document.querySelector("#rollout-figures") !== null`, "the step's figures appear", 15*time.Second)
	markUnreloaded(t, ctx)
	for i := range 90 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+edges["eu-west"]+"/v1/predict",
			strings.NewReader(fmt.Sprintf(`{"text":"a fine film, take %d"}`, i)))
		req.Header.Set("X-Routing-Key", fmt.Sprintf("client-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a prediction in eu-west: HTTP %d", resp.StatusCode)
		}
	}
	waitJS(t, ctx, `/stable [1-9]/.test(document.querySelector("#rollout-figures")?.textContent ?? "")`,
		"the step's figures count the stable version's requests", 10*time.Second)
	checkUnreloaded(t, ctx, "the figures")
	checkPage(t, ctx, "the rollout page")
	screenshot(t, ctx, dir, "rollout")

	// Pause from the keyboard, through the confirmation.
	focusOn(t, ctx, "#reason-pause")
	typeAndEnter(t, ctx, "keyboard pause")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("confirm"))); err != nil {
		t.Fatal(err)
	}
	checkPage(t, ctx, "the pause's confirmation")
	focusOn(t, ctx, "#confirm")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.ID("rollout-status"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#rollout-status", "paused", 5*time.Second)

	// Someone else resumes it (the CLI, say): the open page follows.
	markUnreloaded(t, ctx)
	if _, err := reg.Admin.RolloutOp(context.Background(), "demo", "production", "resume", "from the CLI"); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#rollout-status", "running", 3*time.Second)
	checkUnreloaded(t, ctx, "the resume")

	// Every page, at 1280×800 and at phone width, reads without sideways
	// scrolling, and its controls have names.
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, chromedp.EmulateScale(1))); err != nil {
			t.Fatal(err)
		}
		for _, page := range []string{"/ui/models", "/ui/models/demo", "/ui/models/demo/rollout", "/ui/rollouts", "/ui/audit", "/ui/regions"} {
			if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+page), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
				t.Fatal(err)
			}
			checkPage(t, ctx, page+" at "+size.name+" width")
			screenshot(t, ctx, dir, size.name+strings.ReplaceAll(strings.TrimPrefix(page, "/ui"), "/", "-"))
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/models/demo/rollout"), chromedp.WaitVisible(chromedp.ID("reason-abort"))); err != nil {
		t.Fatal(err)
	}

	// Abort from the keyboard, at phone width.
	focusOn(t, ctx, "#reason-abort")
	typeAndEnter(t, ctx, "keyboard abort")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("confirm"))); err != nil {
		t.Fatal(err)
	}
	focusOn(t, ctx, "#confirm")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.ID("rollout-status"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#rollout-status", "aborted", 5*time.Second)
	ro, err := reg.Admin.GetRollout(context.Background(), "demo", "production")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Status != wire.RolloutAborted || ro.Reason != "aborted by alice: keyboard abort" {
		t.Errorf("the rollout after the abort: %s, %q", ro.Status, ro.Reason)
	}
	t.Logf("screenshots in %s", dir)
}

// TestRolloutChartsInChromium: a rollout of a flipped model (it calls
// "a great film" negative) in eu-west, with traffic, breaches its label
// shift and is rolled back; the open page draws the step's charts in
// place: the candidate's label-shift line above the dashed threshold, the
// step marked breached and rolled back, a table of figures for every
// chart, at desktop and phone width.
func TestRolloutChartsInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium, the registry and two edges")
	}
	ctx := chrome(t)
	reg, edges, _ := startRig(t, "-rollout-tick", "200ms", "-rollout-lease", "1s")
	dir := shots(t)
	registrytest.Publish(t, reg.Publisher, "demo", "v3", testenv.FlippedArtifact(t, 3))
	logIn(t, ctx, reg.URL, registrytest.AdminToken)
	spec := wire.RolloutSpec{Version: "v3", Regions: []string{"eu-west"}, Steps: []float64{50, 100}, Interval: wire.Duration(time.Minute),
		Force: true, Thresholds: wire.Thresholds{MinRequests: 30}}
	if _, err := reg.Admin.StartRollout(context.Background(), "demo", "production", spec); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(reg.URL+"/ui/models/demo/rollout"), chromedp.WaitVisible(chromedp.ID("rollout-status"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `document.querySelector("#rollout-figures") !== null`, "the step's figures appear", 15*time.Second)
	markUnreloaded(t, ctx)
	// Praise from many clients, a few at a time, so the step's figures are
	// sampled several times before the candidate has answered enough to
	// be judged.
	for i := 0; i < 300; i++ {
		req, _ := http.NewRequest(http.MethodPost, "http://"+edges["eu-west"]+"/v1/predict",
			strings.NewReader(fmt.Sprintf(`{"text":"a great, moving and wonderful film, take %d"}`, i)))
		req.Header.Set("X-Routing-Key", fmt.Sprintf("client-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i%4 == 3 {
			time.Sleep(100 * time.Millisecond)
		}
		if done, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`/rolled_back/.test(document.querySelector("#rollout-status")?.textContent ?? "")`)); done {
			break
		}
	}
	waitText(t, ctx, "#rollout-status", "rolled_back", 20*time.Second)
	checkUnreloaded(t, ctx, "the rollback")
	breached := `section.step-charts[data-outcome="breached"]`
	waitJS(t, ctx, `document.querySelector('`+breached+` figure[data-chart="label-shift"]') !== null`, "the breached step's charts", 5*time.Second)
	// The candidate's line is above the threshold's (smaller y is higher)
	// and the chart says it crossed; the step says it was rolled back.
	above, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const f = document.querySelector('`+breached+` figure[data-chart="label-shift"]');
		const cand = f.querySelector('polyline.candidate'), limit = f.querySelector('polyline.threshold');
		return f.dataset.crossed === "true" && cand.points.length >= 2 && Number(cand.dataset.top) < Number(limit.dataset.top);
	})()`))
	if err != nil || !above {
		t.Errorf("the label-shift chart of the breached step does not show the candidate past the threshold (%v)", err)
	}
	waitText(t, ctx, breached+" h3", "breached, rolled back", time.Second)
	for _, size := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.w, size.h)); err != nil {
			t.Fatal(err)
		}
		checkPage(t, ctx, "the rolled-back rollout at "+size.name+" width")
		tables, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
			const charts = document.querySelectorAll("figure.chart");
			return charts.length >= 4 && [...charts].every(c => c.querySelector("table tbody tr") !== null && c.querySelector("svg[role=img][aria-label]") !== null);
		})()`))
		if err != nil || !tables {
			t.Errorf("%s: a chart without its table or its name (%v)", size.name, err)
		}
		screenshot(t, ctx, dir, "rollout-rolled-back-"+size.name)
	}
	t.Logf("screenshots in %s", dir)
}
