// Package console is the operators' web console, served by the registry
// under /ui/: server-rendered HTML (html/template) with its assets
// embedded in the binary, one small script of this origin (live.js: a
// page's live part follows server-sent events), and a strict
// Content-Security-Policy without inline script.
//
// An operator logs in with a registry token. The session is an HttpOnly,
// Secure, SameSite=Strict cookie carrying the session sealed with the
// console's key (session.go), so every replica with that key reads it;
// every page reads the registry through its own API, in process, with the
// session's token, so roles, validation and the audit trail are the API's
// (audit entries name the token's principal, as the CLI's do). Every POST
// carries the session's CSRF token.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/slots"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(chartFuncs).Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	// ops are the operations a rollout in status allows.
	"ops": func(status string) []string {
		if status == "paused" {
			return []string{"resume", "abort"}
		}
		return []string{"pause", "abort"}
	},
}).ParseFS(assets, "assets/*.html"))

// Config configures the console; it is built in main.
type Config struct {
	// API is the registry's API: every read and action goes through it.
	API http.Handler
	// Geo is the geo router's base URL, for the regions page; GeoToken
	// its internal token (GEO_INTERNAL_TOKEN), GeoClient the client to
	// reach it (TLS).
	Geo, GeoToken string
	GeoClient     *http.Client
	// SessionTTL is how long a login lasts (default 8h).
	SessionTTL time.Duration
	// SessionKey seals the session cookies. Registry replicas behind one
	// address need the same key; without one, each process makes its own
	// and its sessions end when it does.
	SessionKey []byte
	Logger     *slog.Logger
	Now        func() time.Time
}

// Console serves /ui/.
type Console struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	sealer  *sealer
	streams slots.Counts // live streams open per session
	pollers pollers      // one per state the live streams follow
	logins  *loginThrottle
}

const (
	sessionCookie = "sap_session"
	loginCookie   = "sap_login" // the login form's CSRF token (double submit)
)

// New returns the console's handler.
func New(cfg Config) *Console {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GeoClient == nil {
		cfg.GeoClient = &http.Client{Timeout: 5 * time.Second}
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), mux: http.NewServeMux(), sealer: newSealer(cfg.SessionKey),
		logins: newLoginThrottle()}
	static, _ := fs.Sub(assets, "assets")
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServer(http.FS(static))))
	c.mux.HandleFunc("GET /ui/{$}", c.home)
	c.mux.HandleFunc("GET /ui/login", c.loginForm)
	c.mux.HandleFunc("POST /ui/login", c.login)
	c.mux.HandleFunc("POST /ui/logout", c.withSession(c.logout))
	c.mux.HandleFunc("GET /ui/models", c.withSession(c.models))
	c.mux.HandleFunc("GET /ui/models/{name}", c.withSession(c.model))
	c.mux.HandleFunc("GET /ui/models/{name}/regions", c.withSession(c.regions))
	c.mux.HandleFunc("GET /ui/models/{name}/events", c.withSession(c.regionsEvents))
	c.mux.HandleFunc("GET /ui/rollouts", c.withSession(c.rollouts))
	c.mux.HandleFunc("GET /ui/models/{name}/rollout", c.withSession(c.rollout))
	c.mux.HandleFunc("GET /ui/models/{name}/rollout/live", c.withSession(c.rolloutLive))
	c.mux.HandleFunc("GET /ui/models/{name}/rollout/events", c.withSession(c.rolloutEvents))
	c.mux.HandleFunc("POST /ui/models/{name}/rollout/start", c.withSession(c.confirmRollout))
	c.mux.HandleFunc("POST /ui/models/{name}/rollout/start/confirm", c.withSession(c.startRollout))
	c.mux.HandleFunc("POST /ui/models/{name}/rollout/op/{op}", c.withSession(c.confirmOp))
	c.mux.HandleFunc("POST /ui/models/{name}/rollout/op/{op}/confirm", c.withSession(c.rolloutOp))
	c.mux.HandleFunc("POST /ui/models/{name}/{action}", c.withSession(c.confirm))
	c.mux.HandleFunc("POST /ui/models/{name}/{action}/confirm", c.withSession(c.act))
	c.mux.HandleFunc("GET /ui/audit", c.withSession(c.audit))
	c.mux.HandleFunc("GET /ui/regions", c.withSession(c.regionsPage))
	c.mux.HandleFunc("GET /ui/regions/live", c.withSession(c.geoLive))
	c.mux.HandleFunc("GET /ui/regions/events", c.withSession(c.geoEvents))
	return c
}

// securityHeaders go on every console answer: nothing but this origin's
// styles and images, no script, no framing, no caching of pages.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// ServeHTTP serves /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// withSession sends a request without a session to the login page and
// refuses a POST whose CSRF token is not the session's.
func (c *Console) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.current(r)
		if s == nil {
			if r.Method != http.MethodGet {
				c.fail(w, http.StatusForbidden, "your session has ended: log in again")
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
			c.fail(w, http.StatusForbidden, "this form did not come from the console (CSRF token missing or wrong)")
			return
		}
		h(w, r, s)
	}
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if c.current(r) == nil {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/models", http.StatusSeeOther)
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	nonce := randomToken()
	setCookie(w, loginCookie, nonce, 600)
	c.render(w, http.StatusOK, "login.html", map[string]any{"Nonce": nonce, "Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/models"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	client, now := remoteAddr(r.RemoteAddr), c.cfg.Now()
	if wait := c.logins.wait(client, now); wait > 0 {
		secs := int(wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.fail(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed logins: try again in %d s", secs))
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("nonce")), []byte(ck.Value)) != 1 {
		c.fail(w, http.StatusForbidden, "this login form did not come from the console: reload it")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	var who struct{ Name, Role string }
	if err := c.call(r.Context(), token, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
		c.logins.failed(client, now)
		c.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Nonce": ck.Value, "Error": "That token is not valid here.",
			"Next": safeNext(r.PostFormValue("next"))})
		return
	}
	c.logins.succeeded(client)
	s := &session{ID: randomToken(), Token: token, Name: who.Name, Role: who.Role, CSRF: randomToken(),
		Expires: c.cfg.Now().Add(c.cfg.SessionTTL)}
	setCookie(w, sessionCookie, c.sealer.seal(s), int(c.cfg.SessionTTL.Seconds()))
	setCookie(w, loginCookie, "", -1)
	c.log.Info("console login", "principal", who.Name, "role", who.Role)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sealer.logout(s, c.cfg.Now())
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// apiError is an error answer of the registry's API.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// call makes one request to the registry's API in process, with token.
func (c *Console) call(ctx context.Context, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(data))
	}
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.code >= 300 {
		var e struct{ Error string }
		_ = json.Unmarshal([]byte(rec.body.String()), &e)
		return &apiError{Status: rec.code, Message: e.Error}
	}
	if out != nil {
		return json.Unmarshal([]byte(rec.body.String()), out)
	}
	return nil
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func (c *Console) render(w http.ResponseWriter, code int, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		c.log.Error("cannot render a console page", "page", name, "err", err)
		http.Error(w, "cannot render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, b.String())
}

// fail answers with the error page.
func (c *Console) fail(w http.ResponseWriter, code int, msg string) {
	c.render(w, code, "error.html", map[string]any{"Code": code, "Message": msg})
}

// failAPI answers with what the API said.
func (c *Console) failAPI(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		c.fail(w, ae.Status, ae.Message)
		return
	}
	c.fail(w, http.StatusBadGateway, "the registry did not answer: "+err.Error())
}
