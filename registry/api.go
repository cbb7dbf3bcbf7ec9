package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/bearer"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/slots"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// HandlerFunc is an API handler: it gets the authenticated caller and
// returns an error, which the API turns into a status and a JSON body.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

// API is the registry's HTTP server: routing, authentication and roles,
// request IDs, JSON errors, logs, metrics and the audit of denied calls.
// The admin package mounts its routes on the same API.
type API struct {
	reg    *Registry
	tokens *Tokens // nil only when auth is explicitly disabled
	log    *slog.Logger
	mux    *http.ServeMux
	routes []string // the authenticated patterns, in mount order
	// draining makes /health/ready fail during shutdown so Consul and load
	// balancers route away before the server stops.
	draining atomic.Bool
	// anonymousDenials lets refusals of callers without a valid token into
	// the audit trail at up to 10 a second (bursts of 100), so that nobody
	// without a token can flood it; the rest are only counted.
	anonymousDenials *tokenBucket
	// principalDenials does the same per principal with a valid token
	// (refused by role): one a second, bursts of 20. Principals are the
	// configured tokens, so the map stays that small.
	principalDenials sync.Map // principal name -> *tokenBucket
	// watches counts the blocking reads in progress of each token, and of
	// each token at each address.
	watches slots.Counts
	// blobStreams counts the artifact downloads in progress (one key).
	blobStreams slots.Counts
}

// SetDraining switches readiness off (true) before a graceful shutdown.
func (a *API) SetDraining(d bool) { a.draining.Store(d) }

// NewAPI returns the API with the registry routes mounted. tokens may be
// nil only for a local, explicitly insecure set-up.
func NewAPI(reg *Registry, tokens *Tokens, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.Default()
	}
	a := &API{reg: reg, tokens: tokens, log: logger.With("component", "registry-api"), mux: http.NewServeMux(),
		anonymousDenials: newTokenBucket(10, 100)}
	a.mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, map[string]string{"status": "ok"}) })
	a.mux.HandleFunc("GET /health/ready", a.ready)
	a.mux.Handle("GET /metrics", obs.MetricsHandler())
	a.mountRegistry()
	return a
}

// Registry returns the registry behind the API.
func (a *API) Registry() *Registry { return a.reg }

// Handle mounts h on pattern ("METHOD /path/{var}") for callers with at
// least role.
func (a *API) Handle(pattern string, role Role, h HandlerFunc) {
	route := pattern
	a.routes = append(a.routes, pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, route, role, h)
	})
}

// Routes lists every pattern mounted with Handle (all need a token), so
// tests can prove none is left out of the authorisation matrix.
func (a *API) Routes() []string { return slices.Clone(a.routes) }

// ServeHTTP gives every request an ID (the client's valid X-Request-ID, or
// a new one) and routes it. A request no route takes gets the mux's status
// (404, or 405 with Allow) with a JSON error like every other.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-ID")
	if !obs.ValidRequestID(id) {
		id = obs.NewRequestID()
	}
	w.Header().Set("X-Request-ID", id)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		a.mux.ServeHTTP(w, r)
		return
	}
	rec := &discardWriter{header: http.Header{}, code: http.StatusNotFound}
	h.ServeHTTP(rec, r)
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	httperr.WriteHTTP(w, httperr.New(rec.code, "no route for %s %s", r.Method, r.URL.Path), id)
}

// discardWriter keeps only the status and headers of the mux's own
// not-found and method-not-allowed answers.
type discardWriter struct {
	header http.Header
	code   int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

type ctxKey struct{}

// RequestID returns the request ID the API assigned to ctx's request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// statusWriter records the status and bytes written.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, route string, role Role, h HandlerFunc) {
	start := time.Now()
	id := RequestID(r.Context())
	sw := &statusWriter{ResponseWriter: w}
	p, err := a.authorize(r, route, role)
	if err == nil {
		err = h(sw, r, p)
	} else if code, _ := httperr.From(err); code == http.StatusUnauthorized {
		// RFC 9110 §11.6.1: a 401 names the scheme that would do.
		w.Header().Set("WWW-Authenticate", `Bearer realm="sentiment-registry"`)
	}
	if err != nil {
		a.writeError(sw, r, err)
	}
	method, path, _ := strings.Cut(route, " ")
	elapsed := time.Since(start).Seconds()
	metrics.GetOrCreateCounter(fmt.Sprintf(`registry_requests_total{method=%q,route=%q,code="%d"}`, method, path, sw.code)).Inc()
	metrics.GetOrCreatePrometheusHistogram(fmt.Sprintf(`registry_request_duration_seconds{method=%q,route=%q}`, method, path)).Update(elapsed)
	metrics.GetOrCreateCounter(`registry_response_bytes_total`).AddInt64(sw.bytes)
	a.log.Info("request", "request_id", id, "method", r.Method, "route", path, "status", sw.code,
		"duration_ms", elapsed*1000, "bytes_out", sw.bytes, "actor", p.Name, "client", obs.TruncateIP(r.RemoteAddr))
}

// authorize checks the bearer token and role; refusals are audited.
func (a *API) authorize(r *http.Request, route string, role Role) (Principal, error) {
	if role == RoleNone {
		return Principal{}, nil
	}
	if a.tokens == nil {
		return Principal{Name: "anonymous", Role: RoleAdmin}, nil
	}
	token, ok := bearer.Token(r.Header.Get("Authorization"))
	if !ok {
		a.auditDenied(r, route, Principal{}, "missing bearer token")
		return Principal{}, httperr.New(http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
	}
	p, ok := a.tokens.Authenticate(token)
	if !ok {
		a.auditDenied(r, route, Principal{}, "unknown token")
		return Principal{}, httperr.New(http.StatusUnauthorized, "invalid token")
	}
	if p.Role < role {
		a.auditDenied(r, route, p, "role "+p.Role.String()+" lacks "+role.String())
		return p, httperr.New(http.StatusForbidden, "role %s may not do this (needs %s)", p.Role, role)
	}
	return p, nil
}

// anonymousDenialsDropped and principalDenialsDropped count refusals that
// were not audited (see API.anonymousDenials and API.principalDenials).
var (
	anonymousDenialsDropped = metrics.NewCounter(`registry_audit_anonymous_denials_dropped_total`)
	principalDenialsDropped = metrics.NewCounter(`registry_audit_principal_denials_dropped_total`)
)

func (a *API) auditDenied(r *http.Request, route string, p Principal, why string) {
	if p.Name == "" && !a.anonymousDenials.allow(time.Now()) {
		anonymousDenialsDropped.Inc()
		return
	}
	if p.Name != "" {
		b, _ := a.principalDenials.LoadOrStore(p.Name, newTokenBucket(1, 20))
		if !b.(*tokenBucket).allow(time.Now()) {
			principalDenialsDropped.Inc()
			return
		}
	}
	// A failure is logged and counted by Audit; the refusal stands.
	_, _ = a.reg.Audit(r.Context(), wire.AuditEntry{
		Actor: p.Name, Role: p.Role.String(), Action: refusalAction, Result: "denied",
		Detail: why, Route: route, RequestID: RequestID(r.Context()),
		Model: r.PathValue("name"), Channel: r.PathValue("channel"),
	})
}

// StatusOf maps registry errors to HTTP status codes.
func StatusOf(err error) int {
	var he *httperr.Error
	switch {
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, ErrQualityGate):
		return http.StatusConflict
	case errors.Is(err, wire.ErrInvalid), errors.Is(err, ErrDigest):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadArtifact), errors.Is(err, ErrUnsigned):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrStoreDown):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// clientError turns any handler error into the one error type: an
// *httperr.Error stays as it is; the registry's own errors keep their
// message (it is written for the client) below 500; a 5xx says only what
// kind of failure it was, and the cause goes to the log.
func clientError(err error) *httperr.Error {
	var he *httperr.Error
	if errors.As(err, &he) {
		return he
	}
	code := StatusOf(err)
	switch {
	case code < 500:
		return &httperr.Error{Code: code, Msg: err.Error(), Err: err}
	case code == http.StatusServiceUnavailable:
		return httperr.Wrap(code, "storage unavailable, retry later", err)
	}
	return httperr.Wrap(code, httperr.Internal, err)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := clientError(err)
	if he.Code >= 500 {
		a.log.Error("request failed", "request_id", RequestID(r.Context()), "status", he.Code, "err", err)
	}
	httperr.WriteHTTP(w, he, RequestID(r.Context()))
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ReadJSON decodes a request body strictly: bounded size, no unknown
// fields, no name twice in one object, exactly one value. A Content-Type,
// when sent, must be JSON's media type; its case and parameters do not
// matter (RFC 9110 §8.3.1).
func ReadJSON(r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return httperr.New(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		}
	}
	body := &countingReader{r: r.Body}
	var read bytes.Buffer // what the decoder read, for repeatedName
	dec := json.NewDecoder(io.TeeReader(io.LimitReader(body, limit+1), &read))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if body.err != nil {
			return bodyError(body.err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: request body is empty, truncated or larger than %d bytes", wire.ErrInvalid, limit)
		}
		return fmt.Errorf("%w: invalid JSON body: %v", wire.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value in the body", wire.ErrInvalid)
	}
	if name, ok := repeatedName(json.NewDecoder(&read), reflect.TypeOf(v)); ok {
		return fmt.Errorf("%w: field %q appears twice in one object", wire.ErrInvalid, name)
	}
	return nil
}

// repeatedName finds a name given twice in one object of the JSON value
// dec reads, which must be valid and decode into a value of type typ.
// encoding/json takes the last of the two; other parsers take the first
// (RFC 8259 §4 leaves it open, I-JSON, RFC 7493, forbids it), so a proxy
// that checks one could pass the other. Names are compared as
// encoding/json matches them: a struct's field names without regard to
// case (bytes.EqualFold, so {"force":false,"FORCE":true} names one field
// twice), a map's keys exactly. The edge refuses repeated names too.
func repeatedName(dec *json.Decoder, typ reflect.Type) (string, bool) {
	for typ != nil && typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	t, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return "", false
			}
			name, _ := t.(string)
			key, child := name, elemType(typ)
			if typ != nil && typ.Kind() == reflect.Struct {
				key, child = string(foldName(name)), fieldType(typ, name)
			}
			if seen[key] {
				return name, true
			}
			seen[key] = true
			if name, ok := repeatedName(dec, child); ok {
				return name, true
			}
		}
	case json.Delim('['):
		for dec.More() {
			if name, ok := repeatedName(dec, elemType(typ)); ok {
				return name, true
			}
		}
	default:
		return "", false
	}
	_, _ = dec.Token() // the closing } or ]
	return "", false
}

// elemType is the type of a map's values or a slice's items; nil when
// typ has none (an interface: names are then compared exactly).
func elemType(typ reflect.Type) reflect.Type {
	if typ == nil {
		return nil
	}
	switch typ.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		return typ.Elem()
	}
	return nil
}

// fieldType is the type of the struct field encoding/json decodes name
// into, or nil.
func fieldType(typ reflect.Type, name string) reflect.Type {
	want := string(foldName(name))
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
			continue
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			if ft := fieldType(f.Type, name); ft != nil {
				return ft
			}
			continue
		case tag == "":
			tag = f.Name
		}
		if string(foldName(tag)) == want {
			return f.Type
		}
	}
	return nil
}

// foldName folds s so that two names fold alike exactly when
// bytes.EqualFold holds, as encoding/json matches struct fields: each
// rune becomes the smallest of its Unicode simple-folding orbit.
func foldName(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		for {
			next := unicode.SimpleFold(r)
			if next <= r {
				r = next
				break
			}
			r = next
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// countingReader counts the bytes read from a request body and keeps the
// first error other than its end: an error of the client's, not of what
// the bytes go to.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// bodyError is the answer to a request whose body could not be read: 408
// when it stopped coming (the server's -body-idle-timeout), else 400.
func bodyError(err error) error {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return httperr.New(http.StatusRequestTimeout, "the request body stopped coming: send it without pauses")
	}
	return httperr.New(http.StatusBadRequest, "cannot read the request body: %v", err)
}

// storeUp is the outcome of the last readiness check of the store (Consul
// and Kubernetes probe it every few seconds): 1 reachable, 0 not.
var storeUp = metrics.NewGauge(`registry_store_up`, nil)

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.reg.Check(ctx); err != nil {
		storeUp.Set(0)
		a.log.Warn("not ready: storage unreachable", "err", err)
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "storage unavailable"})
		return
	}
	storeUp.Set(1)
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// tokenBucket is a rate limit shared by all callers: perSec tokens a
// second, up to burst.
type tokenBucket struct {
	mu            sync.Mutex
	perSec, burst float64
	tokens        float64
	last          time.Time
}

func newTokenBucket(perSec, burst float64) *tokenBucket {
	return &tokenBucket{perSec: perSec, burst: burst, tokens: burst}
}

func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.perSec)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
