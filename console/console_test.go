package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/console"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store/dir"
)

// browser is a client with cookies, against the console over TLS (its
// cookies are Secure).
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, base: srv.URL, client: c}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

var hidden = regexp.MustCompile(`name="(nonce|csrf)" value="([0-9a-f]+)"`)

func field(page, name string) string {
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

// login logs in with token and returns the models page.
func (b *browser) login(token string) (*http.Response, string) {
	_, form := b.do("GET", "/ui/login", nil)
	resp, _ := b.do("POST", "/ui/login", url.Values{"token": {token}, "nonce": {field(form, "nonce")}, "next": {"/ui/models"}})
	return resp, ""
}

func TestConsoleSession(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, registry.Config{}, admin.Config{})
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0.9))
	if _, err := reg.Admin.Promote(context.Background(), "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(console.New(console.Config{API: reg.API}))
	defer srv.Close()
	b := newBrowser(t, srv)

	// No session: to the login page.
	if resp, _ := b.do("GET", "/ui/models/demo", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.do("GET", "/ui/login", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(page, "<script") {
		t.Errorf("CSP %q; a script in the page: %v", csp, strings.Contains(page, "<script"))
	}
	if !strings.Contains(page, `<label for="token">`) {
		t.Error("the token field has no label")
	}
	// A login form that did not come from the console is refused.
	if resp, _ := b.do("POST", "/ui/login", url.Values{"token": {registrytest.AdminToken}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's nonce: %d", resp.StatusCode)
	}
	// A wrong token is told so.
	_, form := b.do("GET", "/ui/login", nil)
	if resp, page := b.do("POST", "/ui/login", url.Values{"token": {"nope"}, "nonce": {field(form, "nonce")}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not valid") {
		t.Errorf("a wrong token: %d", resp.StatusCode)
	}
	resp, _ = b.login(registrytest.AdminToken)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/models" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sap_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", cookie)
	}
	_, page = b.do("GET", "/ui/models", nil)
	if !strings.Contains(page, `href="/ui/models/demo"`) || !strings.Contains(page, "alice (admin)") {
		t.Errorf("models page:\n%s", page)
	}
	_, page = b.do("GET", "/ui/models/demo", nil)
	for _, want := range []string{"production (revision 1)", "<td>everywhere</td><td>v1</td>", "0.9000", "unsigned"} {
		if !strings.Contains(page, want) {
			t.Errorf("model page lacks %q:\n%s", want, page)
		}
	}
	if resp, page := b.do("GET", "/ui/models/nothere", nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "not found") {
		t.Errorf("an unknown model: %d", resp.StatusCode)
	}
	// A forged POST without the CSRF token is refused; with it, logout.
	if resp, _ := b.do("POST", "/ui/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", resp.StatusCode)
	}
	_, page = b.do("GET", "/ui/models", nil)
	if resp, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {field(page, "csrf")}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/models", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout the session still works: %d", resp.StatusCode)
	}
	// A redirect after login stays in the console.
	_, form = b.do("GET", "/ui/login", nil)
	resp, _ = b.do("POST", "/ui/login", url.Values{"token": {registrytest.ReaderToken}, "nonce": {field(form, "nonce")}, "next": {"//evil.example/x"}})
	if resp.Header.Get("Location") != "/ui/models" {
		t.Errorf("next=//evil.example/x redirected to %q", resp.Header.Get("Location"))
	}
}

// TestConsoleSessionAcrossReplicas: a session opened on one registry
// replica works on another with the same key (behind one load balancer),
// and nowhere else; a tampered, expired or logged-out cookie is refused.
func TestConsoleSessionAcrossReplicas(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, registry.Config{}, admin.Config{})
	key := []byte("0123456789abcdef0123456789abcdef")
	replica := func(key []byte, now func() time.Time) *httptest.Server {
		srv := httptest.NewTLSServer(console.New(console.Config{API: reg.API, SessionKey: key, Now: now}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := replica(key, nil), replica(key, nil)
	other := replica([]byte("another key, another deployment!"), nil)
	later := replica(key, func() time.Time { return time.Now().Add(9 * time.Hour) })

	alice := newBrowser(t, a)
	if resp, _ := alice.login(registrytest.AdminToken); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var cookie string
	for _, c := range alice.client.Jar.Cookies(mustURL(t, a.URL+"/ui/")) {
		if c.Name == "sap_session" {
			cookie = c.Value
		}
	}
	if cookie == "" || strings.Contains(cookie, registrytest.AdminToken) {
		t.Fatalf("the session cookie %q is missing or shows the token", cookie)
	}
	get := func(srv *httptest.Server, value string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/ui/models", nil)
		req.AddCookie(&http.Cookie{Name: "sap_session", Value: value})
		c := srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, page := get(b, cookie); code != http.StatusOK || !strings.Contains(page, "alice (admin)") {
		t.Errorf("the other replica: %d", code)
	}
	tampered := []byte(cookie)
	tampered[len(tampered)/2] ^= 1
	for name, c := range map[string]struct {
		srv   *httptest.Server
		value string
	}{"a deployment with another key": {other, cookie}, "a tampered cookie": {a, string(tampered)},
		"after the session's 8 hours": {later, cookie}, "a cookie of random text": {a, "bm90IGEgc2Vzc2lvbg"}} {
		if code, _ := get(c.srv, c.value); code != http.StatusSeeOther {
			t.Errorf("%s: %d, want 303 to the login page", name, code)
		}
	}
	// After logging out, the old cookie replayed is refused.
	_, page := alice.do("GET", "/ui/models", nil)
	if resp, _ := alice.do("POST", "/ui/logout", url.Values{"csrf": {field(page, "csrf")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if code, _ := get(a, cookie); code != http.StatusSeeOther {
		t.Errorf("the logged-out cookie replayed: %d", code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLoginIsThrottled: after five failed logins from one address each
// further attempt waits, doubling, with 429 and Retry-After, even with the
// right token; another address is not held back; a success forgets the
// failures (#29, finding 5).
func TestLoginIsThrottled(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, registry.Config{}, admin.Config{})
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	con := console.New(console.Config{API: reg.API, Now: clock})
	from := "203.0.113.7:40000"
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = from // the client's address, as the test plays it
		con.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	defer srv.Close()
	b := newBrowser(t, srv)
	try := func(token string) *http.Response {
		_, form := b.do("GET", "/ui/login", nil)
		resp, _ := b.do("POST", "/ui/login", url.Values{"token": {token}, "nonce": {field(form, "nonce")}})
		return resp
	}
	for i := range 5 {
		if resp := try("guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp := try(registrytest.AdminToken)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("the right token after 5 failures at once: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	now = now.Add(2 * time.Second)
	if resp := try("guess"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the wait: %d, want 401", resp.StatusCode)
	}
	if resp := try("guess"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("the 7th failure waits 2 s: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	from = "198.51.100.1:40000"
	if resp := try(registrytest.AdminToken); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another address: %d, want a login", resp.StatusCode)
	}
	from = "203.0.113.7:40001"
	now = now.Add(3 * time.Second)
	if resp := try(registrytest.AdminToken); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the first address after its wait, right token: %d, want a login", resp.StatusCode)
	}
	if resp := try("guess"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after a success the failures are forgotten: %d, want 401", resp.StatusCode)
	}
}

// TestLiveStreamsPerSession: one session holds at most four live streams
// open; the fifth is refused with 429, and closing one frees its place
// (#29, finding 8).
func TestLiveStreamsPerSession(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, registry.Config{}, admin.Config{})
	registrytest.Publish(t, reg.Publisher, "demo", "v1", testenv.TinyArtifact(t, 1, 0.9))
	srv := httptest.NewTLSServer(console.New(console.Config{API: reg.API}))
	defer srv.Close()
	b := newBrowser(t, srv)
	if resp, _ := b.login(registrytest.ReaderToken); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/models/demo/events", nil)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, cancel
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range 4 {
		resp, cancel := open()
		cancels = append(cancels, cancel)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, cancel := open()
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fifth stream of one session: %d, want 429", resp.StatusCode)
	}
	cancels[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, cancel := open()
		cancels = append(cancels, cancel)
		if resp.StatusCode == http.StatusOK {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's place was not freed: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
