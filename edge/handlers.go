package edge

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/ratelimit"
	"github.com/sentimentpro/sentiment/internal/sechdr"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model"
)

// Version is the server version reported by GET /v2.
var Version = "dev"

type handler func(ctx *fasthttp.RequestCtx, sv *Serving, id string) error

// Handler returns the edge's HTTP handler.
func (s *Server) Handler() fasthttp.RequestHandler {
	r := router.New()
	// RFC 9110 §9.1: a server that answers GET answers HEAD too. fasthttp
	// sends a HEAD answer's headers (Content-Length included) without
	// its content.
	get := func(path string, h fasthttp.RequestHandler) {
		r.GET(path, h)
		r.HEAD(path, h)
	}
	r.POST("/v1/predict", s.wrap("/v1/predict", true, s.predict))
	r.POST("/v1/predict/batch", s.wrap("/v1/predict/batch", true, s.predictBatch))
	get("/v2", s.wrap("/v2", false, s.serverMeta))
	get("/v2/health/live", s.wrap("/v2/health/live", false, s.live))
	get("/v2/health/ready", s.wrap("/v2/health/ready", false, s.protocolReady))
	get("/v2/models/{name}", s.wrap("/v2/models/{name}", false, s.modelMeta))
	get("/v2/models/{name}/versions/{version}", s.wrap("/v2/models/{name}/versions/{version}", false, s.modelMeta))
	get("/v2/models/{name}/config", s.wrap("/v2/models/{name}/config", false, s.modelConfig))
	get("/v2/models/{name}/versions/{version}/config", s.wrap("/v2/models/{name}/versions/{version}/config", false, s.modelConfig))
	get("/v2/models/{name}/ready", s.wrap("/v2/models/{name}/ready", false, s.modelReady))
	get("/v2/models/{name}/versions/{version}/ready", s.wrap("/v2/models/{name}/versions/{version}/ready", false, s.modelReady))
	r.POST("/v2/models/{name}/infer", s.wrap("/v2/models/{name}/infer", true, s.infer))
	r.POST("/v2/models/{name}/versions/{version}/infer", s.wrap("/v2/models/{name}/versions/{version}/infer", true, s.infer))
	get("/health/live", s.wrap("/health/live", false, s.live))
	get("/health/ready", s.wrap("/health/ready", false, s.ready))
	get("/metrics", obs.FastMetricsHandler)
	// An API answers a wrong path with a clear 404, not a redirect: the
	// router's redirects carry none of the headers below, and their
	// Location is built from the client's Host header.
	r.RedirectTrailingSlash, r.RedirectFixedPath = false, false
	r.NotFound = s.routerAnswer(func(ctx *fasthttp.RequestCtx) error {
		return httperr.New(fasthttp.StatusNotFound, "no route %s %s", ctx.Method(), ctx.Path())
	})
	r.MethodNotAllowed = s.routerAnswer(func(ctx *fasthttp.RequestCtx) error {
		return httperr.New(fasthttp.StatusMethodNotAllowed, "method %s not allowed on %s", ctx.Method(), ctx.Path())
	})
	// OPTIONS (RFC 9110 §9.3.7): the router has set Allow; no content.
	r.GlobalOPTIONS = s.routerAnswer(func(ctx *fasthttp.RequestCtx) error {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	})
	return r.Handler
}

// routerAnswer wraps the answers the router gives itself (404, 405,
// OPTIONS) with what every answer carries: the security headers, the
// trace context and the request ID. answer's error, if any, is written
// as the JSON error body.
func (s *Server) routerAnswer(answer func(ctx *fasthttp.RequestCtx) error) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		setSecurityHeaders(ctx, s.cfg.TLS)
		obs.SetTraceHeader(&ctx.Response.Header, obs.TraceFrom(&ctx.Request.Header, false))
		id := s.requestID(ctx)
		if err := answer(ctx); err != nil {
			httperr.WriteFast(ctx, err, id)
		}
	}
}

// FastHTTPServer returns a fasthttp.Server with this edge's limits and
// timeouts (slow clients cannot hold connections forever).
func (s *Server) FastHTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            s.Handler(),
		MaxRequestBodySize: s.cfg.MaxBodyBytes,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        60 * time.Second,
		ReadBufferSize:     8 << 10,
		// No Server header: it names the software to a scanner (OWASP's
		// advice for APIs); GET /v2 names it to the clients that ask.
		NoDefaultServerHeader: true,
		Logger:                obs.ServerLogger{Log: s.log, Level: slog.LevelDebug},
		ErrorHandler:          httperr.ErrorHandler(s.cfg.MaxBodyBytes, func(ctx *fasthttp.RequestCtx) { setSecurityHeaders(ctx, s.cfg.TLS) }),
	}
}

var (
	// Header names as fasthttp stores them (it normalises the names of
	// requests it parses), so the hot path skips normalising them again.
	requestIDKey    = []byte("X-Request-Id")
	forwardedForKey = []byte("X-Forwarded-For")
)

func setSecurityHeaders(ctx *fasthttp.RequestCtx, tls bool) { sechdr.Set(&ctx.Response.Header, tls) }

// wrap is the middleware every route shares: request ID and trace
// context, security headers, rate limiting (for the prediction routes),
// the model snapshot, errors as JSON, metrics, error logs and sampled
// access logs.
func (s *Server) wrap(route string, limited bool, h handler) fasthttp.RequestHandler {
	rm := metricsFor(route)
	return func(ctx *fasthttp.RequestCtx) {
		start := ctx.Time() // read by fasthttp just before it called the handler
		if start.IsZero() { // a context no fasthttp.Server made (tests)
			start = time.Now()
		}
		id := s.requestID(ctx)
		logged := s.access.Sample()
		tc := obs.TraceFrom(&ctx.Request.Header, logged)
		obs.SetTraceHeader(&ctx.Response.Header, tc)
		setSecurityHeaders(ctx, s.cfg.TLS)
		var err error
		if limited && s.limiter != nil {
			if ok, wait := s.limiter.Allow(s.client(ctx), start); !ok {
				rateLimited.Inc()
				ctx.Response.Header.Set("Retry-After", ratelimit.RetryAfter(wait))
				err = httperr.New(fasthttp.StatusTooManyRequests, "rate limit exceeded: %.0f requests per minute", s.cfg.RatePerMinute)
			}
		}
		if err == nil && limited {
			err = decodeBody(ctx, s.cfg.MaxBodyBytes)
		}
		var served *Serving
		if err == nil {
			sv := s.current.Load()
			if limited {
				sv = s.choose(ctx, sv, start)
			}
			if sv == nil && limited && s.cfg.Peers != nil {
				err = s.cfg.Peers.forward(ctx, id, tc)
			} else {
				err = h(ctx, sv, id)
				served = sv
			}
		}
		if err != nil {
			httperr.WriteFast(ctx, err, id)
			if code := ctx.Response.StatusCode(); code >= 500 || code == fasthttp.StatusTooManyRequests {
				s.log.Warn("request failed", "request_id", id, "trace_id", tc.TraceIDString(), "route", route, "status", code,
					"err", err.Error(), "client", obs.TruncateIP(s.client(ctx).String()))
			}
		}
		seconds := time.Since(start).Seconds()
		rm.observe(ctx.Response.StatusCode(), seconds)
		if limited && served != nil {
			served.served(ctx.Response.StatusCode(), seconds)
		}
		if logged {
			s.access.Write(ctx, id, tc, s.client(ctx).String(), start, "route", route)
		}
	}
}

// client is the request's client: the peer, or the address a trusted
// proxy (a geo router, a peer edge) forwarded.
func (s *Server) client(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := clientip.Of(ctx.RemoteIP())
	if !s.fromProxy(ctx, peer) {
		return peer
	}
	xff := ctx.Request.Header.PeekCanonical(forwardedForKey)
	if len(xff) == 0 {
		return peer
	}
	return clientip.Forwarded(peer, xff, s.cfg.TrustedProxies)
}

// fromProxy reports whether the request's peer is a proxy this edge
// trusts to name the client (X-Forwarded-For) and its routing key: an
// address in TrustedProxies, or, with TrustClientCerts, any client whose
// certificate verified against the deployment's CA.
func (s *Server) fromProxy(ctx *fasthttp.RequestCtx, peer netip.Addr) bool {
	if clientip.InAny(peer, s.cfg.TrustedProxies) {
		return true
	}
	return s.cfg.TrustClientCerts && ctx.IsTLS() && tlsfiles.Verified(ctx.TLSConnectionState())
}

// requestID returns the request's ID: the client's X-Request-ID when it
// is valid, else a new one. It sets the answer's X-Request-Id. The string
// views that header's bytes without copying (no allocation per request):
// it is valid until the handler returns, and nothing keeps it longer
// (logs format it at once, peers copy it into their own request).
func (s *Server) requestID(ctx *fasthttp.RequestCtx) string {
	if v := ctx.Request.Header.PeekCanonical(requestIDKey); len(v) > 0 && obs.ValidRequestID(b2s(v)) {
		ctx.Response.Header.SetCanonical(requestIDKey, v)
		return b2s(v)
	}
	var buf [48]byte
	h := &ctx.Response.Header
	h.SetCanonical(requestIDKey, s.ids.Append(buf[:0]))
	return b2s(h.PeekCanonical(requestIDKey))
}

// b2s views bytes as a string without copying; the string must not
// outlive the bytes (fasthttp reuses request buffers).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

var parsers fastjson.ParserPool

func noModel() error {
	return httperr.New(fasthttp.StatusServiceUnavailable, "no model loaded yet")
}

// checkText applies the text rules shared by every prediction route.
func (s *Server) checkText(text []byte, what string) error {
	switch {
	case len(text) > s.cfg.MaxTextBytes:
		return httperr.New(fasthttp.StatusBadRequest, "%s is %d bytes, longer than the %d-byte limit", what, len(text), s.cfg.MaxTextBytes)
	case !utf8.Valid(text):
		return httperr.New(fasthttp.StatusBadRequest, "%s is not valid UTF-8", what)
	case len(strings.TrimSpace(b2s(text))) == 0:
		return httperr.New(fasthttp.StatusBadRequest, "%s is empty", what)
	}
	return nil
}

// parseObject parses a request body that must be one JSON object; like
// tells the client what was expected.
func parseObject(p *fastjson.Parser, body []byte, like string) (*fastjson.Object, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, httperr.New(fasthttp.StatusBadRequest, "invalid JSON: %v", err)
	}
	obj, err := v.Object()
	if err != nil {
		return nil, httperr.New(fasthttp.StatusBadRequest, "body must be a JSON object like %s", like)
	}
	return obj, nil
}

// predictFields parses a /v1/predict body with the full JSON parser:
// "text" (required) and "explain"; anything else is a 400. text views p's
// buffer.
func predictFields(p *fastjson.Parser, body []byte) (text []byte, explain bool, err error) {
	obj, err := parseObject(p, body, `{"text": "..."}`)
	if err != nil {
		return nil, false, err
	}
	hasText := false
	err = eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		switch string(key) {
		case "text":
			if text, ferr = val.StringBytes(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"text" must be a string`)
			}
			hasText = true
		case "explain":
			if explain, ferr = val.Bool(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"explain" must be true or false`)
			}
		default:
			ferr = httperr.New(fasthttp.StatusBadRequest, "unknown field %q", key)
		}
		return ferr
	})
	if err == nil && !hasText {
		err = httperr.New(fasthttp.StatusBadRequest, `missing "text"`)
	}
	return text, explain, err
}

func (s *Server) predict(ctx *fasthttp.RequestCtx, sv *Serving, id string) error {
	if sv == nil {
		return noModel()
	}
	text, ok := plainText(ctx.PostBody())
	explain := false
	if !ok {
		p := parsers.Get()
		defer parsers.Put(p) // text views p's buffer until predict returns
		var err error
		if text, explain, err = predictFields(p, ctx.PostBody()); err != nil {
			return err
		}
	}
	if err := s.checkText(text, "text"); err != nil {
		return err
	}
	pred := sv.Model.Predict(b2s(text))
	sv.observe(pred, len(text))
	s.offer(sv, text, pred.Index)
	b := make([]byte, 0, 256)
	b = appendField(append(b, '{'), "label", pred.Label, true)
	b = append(b, `,"score":`...)
	b = appendScore(b, pred.Score)
	b = appendServing(b, sv, id)
	if explain {
		b = appendExplain(b, sv.Model.Explain(string(text), 5))
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// appendServing appends the fields naming who answered: the model, its
// version, the region and the request ID.
func appendServing(b []byte, sv *Serving, id string) []byte {
	return appendField(append(b, sv.answer...), "request_id", id, false)
}

func appendExplain(b []byte, cs []model.Contribution) []byte {
	b = append(b, `,"explain":[`...)
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(append(b, '{'), "feature", c.Feature, true)
		b = append(b, `,"weight":`...)
		b = strconv.AppendFloat(b, float64(c.Weight), 'f', 4, 32)
		b = append(b, '}')
	}
	return append(b, ']')
}

func (s *Server) predictBatch(ctx *fasthttp.RequestCtx, sv *Serving, id string) error {
	if sv == nil {
		return noModel()
	}
	p := parsers.Get()
	defer parsers.Put(p)
	obj, err := parseObject(p, ctx.PostBody(), `{"texts": ["..."]}`)
	if err != nil {
		return err
	}
	var texts []*fastjson.Value
	ferr := eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		if string(key) != "texts" {
			ferr = httperr.New(fasthttp.StatusBadRequest, "unknown field %q", key)
			return
		}
		if texts, ferr = val.Array(); ferr != nil {
			ferr = httperr.New(fasthttp.StatusBadRequest, `"texts" must be an array of strings`)
		}
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	if len(texts) == 0 {
		return httperr.New(fasthttp.StatusBadRequest, `"texts" must hold 1 to %d strings`, s.cfg.MaxBatch)
	}
	if len(texts) > s.cfg.MaxBatch {
		return httperr.New(fasthttp.StatusRequestEntityTooLarge, "%d texts, at most %d per batch", len(texts), s.cfg.MaxBatch)
	}
	b := make([]byte, 0, 64+48*len(texts))
	b = append(b, `{"predictions":[`...)
	for i, tv := range texts {
		text, err := tv.StringBytes()
		if err != nil {
			return httperr.New(fasthttp.StatusBadRequest, "texts[%d] is not a string", i)
		}
		if err := s.checkText(text, fmt.Sprintf("texts[%d]", i)); err != nil {
			return err
		}
		pred := sv.Model.Predict(b2s(text))
		sv.observe(pred, len(text))
		s.offer(sv, text, pred.Index)
		if i > 0 {
			b = append(b, ',')
		}
		b = appendField(append(b, '{'), "label", pred.Label, true)
		b = append(b, `,"score":`...)
		b = append(appendScore(b, pred.Score), '}')
	}
	b = append(b, ']')
	b = appendServing(b, sv, id)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// live answers both /health/live and the protocol's /v2/health/live.
func (s *Server) live(ctx *fasthttp.RequestCtx, _ *Serving, id string) error {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"live":true,"status":"live"}` + "\n")
	return nil
}

// notReady says why the edge should not take traffic; nil when it should.
func (s *Server) notReady(sv *Serving) error {
	if s.draining.Load() {
		return httperr.New(fasthttp.StatusServiceUnavailable, "draining")
	}
	if sv == nil {
		return noModel()
	}
	return nil
}

// protocolReady is /v2/health/ready: {"ready": true}, or as the protocol
// has it a 4xx with "ready": false.
func (s *Server) protocolReady(ctx *fasthttp.RequestCtx, sv *Serving, id string) error {
	return writeHealth(ctx, `{"ready":`, s.notReady(sv), id)
}

// ready is /health/ready, for Consul and Kubernetes: 503 when not ready,
// else what is served.
func (s *Server) ready(ctx *fasthttp.RequestCtx, sv *Serving, id string) error {
	if err := s.notReady(sv); err != nil {
		return err
	}
	b := appendField([]byte(`{"ready":true,"status":"ready"`), "model", sv.Name, false)
	b = appendField(b, "version", sv.Version, false)
	b = appendField(b, "digest", sv.Digest, false)
	b = appendField(b, "source", sv.Source, false)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}
