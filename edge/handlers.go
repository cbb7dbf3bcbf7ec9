package edge

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
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
	r.POST("/v1/predict", s.wrapInfer("/v1/predict", s.predict))
	r.POST("/v1/predict/batch", s.wrapInfer("/v1/predict/batch", s.predictBatch))
	get("/v2", s.wrap("/v2", s.serverMeta))
	get("/v2/health/live", s.wrap("/v2/health/live", s.live))
	get("/v2/health/ready", s.wrap("/v2/health/ready", s.protocolReady))
	get("/v2/models/{name}", s.wrap("/v2/models/{name}", s.modelMeta))
	get("/v2/models/{name}/versions/{version}", s.wrap("/v2/models/{name}/versions/{version}", s.modelMeta))
	get("/v2/models/{name}/config", s.wrap("/v2/models/{name}/config", s.modelConfig))
	get("/v2/models/{name}/versions/{version}/config", s.wrap("/v2/models/{name}/versions/{version}/config", s.modelConfig))
	get("/v2/models/{name}/ready", s.wrap("/v2/models/{name}/ready", s.modelReady))
	get("/v2/models/{name}/versions/{version}/ready", s.wrap("/v2/models/{name}/versions/{version}/ready", s.modelReady))
	get("/v2/models/stats", s.wrap("/v2/models/stats", s.modelStatsRoute))
	get("/v2/models/{name}/stats", s.wrap("/v2/models/{name}/stats", s.modelStatsRoute))
	get("/v2/models/{name}/versions/{version}/stats", s.wrap("/v2/models/{name}/versions/{version}/stats", s.modelStatsRoute))
	r.POST("/v2/repository/index", s.wrap("/v2/repository/index", s.repositoryIndex))
	r.POST("/v2/repository/models/{name}/load", s.wrap("/v2/repository/models/{name}/load", s.repositoryControl))
	r.POST("/v2/repository/models/{name}/unload", s.wrap("/v2/repository/models/{name}/unload", s.repositoryControl))
	r.POST("/v2/models/{name}/infer", s.wrapInfer("/v2/models/{name}/infer", s.infer))
	r.POST("/v2/models/{name}/versions/{version}/infer", s.wrapInfer("/v2/models/{name}/versions/{version}/infer", s.infer))
	get("/health/live", s.wrap("/health/live", s.live))
	get("/health/ready", s.wrap("/health/ready", s.ready))
	get("/metrics", frontdoor.MetricsHandler)
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
		v := s.door.Enter(ctx)
		s.door.Stamp(ctx, v, false)
		if err := answer(ctx); err != nil {
			frontdoor.WriteError(ctx, err, v.ID)
		}
	}
}

// FastHTTPServer returns the edge's fasthttp.Server: the front door's
// limits (frontdoor.Door.Server) with this edge's body limit.
func (s *Server) FastHTTPServer() *fasthttp.Server {
	return s.door.Server(s.Handler(), frontdoor.Limits{MaxBodyBytes: s.cfg.MaxBodyBytes}, s.log)
}

// forwardedForKey is X-Forwarded-For as fasthttp stores a parsed
// request's header name, so the hot path skips normalising it again.
var forwardedForKey = []byte("X-Forwarded-For")

// wrap serves a route that reads the models held without predicting: sv
// is the default model's version at the time of the request (nil before
// the first).
func (s *Server) wrap(route string, h handler) fasthttp.RequestHandler {
	return s.front(route, false, func(ctx *fasthttp.RequestCtx, id string, _ Caller) (*Serving, error) {
		return nil, h(ctx, s.Current(), id)
	})
}

// inferHandler decodes a prediction request into inf, calls Infer and
// encodes its answer.
type inferHandler func(ctx *fasthttp.RequestCtx, inf *Inference, id string) error

// wrapInfer serves a prediction route: rate limited, its body decoded,
// forwarded to a peer while this edge has no model, and answered through
// the inference core with an Inference for the request's caller.
func (s *Server) wrapInfer(route string, h inferHandler) fasthttp.RequestHandler {
	return s.front(route, true, func(ctx *fasthttp.RequestCtx, id string, c Caller) (*Serving, error) {
		inf := newInference(c)
		defer inf.release()
		err := h(ctx, inf, id)
		return inf.Serving, err
	})
}

// front is the middleware every route shares: request ID and trace
// context, security headers, rate limiting and body decoding (for the
// prediction routes), errors as JSON, metrics, error logs and sampled
// access logs. serve answers (a prediction for the caller, which only the
// prediction routes read), and returns the version that answered a
// prediction, whose figures record the request.
func (s *Server) front(route string, predicts bool, serve func(ctx *fasthttp.RequestCtx, id string, c Caller) (*Serving, error)) fasthttp.RequestHandler {
	rm := metricsFor(route)
	return func(ctx *fasthttp.RequestCtx) {
		v := s.door.Enter(ctx)
		s.door.Stamp(ctx, v, false)
		var err error
		var c Caller
		if predicts {
			c = s.caller(ctx, v.Start)
			err = s.door.Admit(ctx, c.Client, v.Start)
		}
		if err == nil && predicts {
			err = decodeBody(ctx, s.cfg.MaxBodyBytes)
		}
		var served *Serving
		if err == nil {
			if predicts && s.cfg.Peers != nil && s.Current() == nil {
				err = s.forwardToPeer(ctx, &v)
			} else {
				served, err = serve(ctx, v.ID, c)
			}
		}
		if err != nil {
			frontdoor.WriteError(ctx, err, v.ID)
			if code := ctx.Response.StatusCode(); code >= 500 || code == fasthttp.StatusTooManyRequests {
				s.log.Warn("request failed", "request_id", v.ID, "trace_id", v.Trace.TraceIDString(), "route", route, "status", code,
					"err", err.Error(), "client", obs.TruncateIP(s.client(ctx).String()))
			}
		}
		seconds := time.Since(v.Start).Seconds()
		rm.observe(ctx.Response.StatusCode(), seconds)
		if served != nil {
			served.served(ctx.Response.StatusCode(), seconds)
		}
		if v.Logged {
			if served != nil {
				s.door.Leave(ctx, v, s.client(ctx), "route", route, "model", served.Name, "model_version", served.Version)
			} else {
				s.door.Leave(ctx, v, s.client(ctx), "route", route)
			}
		}
	}
}

// forwardToPeer has a peer region answer while this edge has no model. The
// request is rewritten and the answer replaced, so the visit's ID is
// copied first and the answer stamped again after.
func (s *Server) forwardToPeer(ctx *fasthttp.RequestCtx, v *frontdoor.Visit) error {
	v.ID = strings.Clone(v.ID)
	trusted := s.fromProxy(ctx, clientip.Of(ctx.RemoteIP()))
	err := s.cfg.Peers.forward(ctx, v.ID, trusted, v.Trace)
	s.door.Stamp(ctx, *v, err == nil)
	return err
}

// client is the request's client: the peer, or the address a trusted
// proxy (a geo router, a peer edge) forwarded.
func (s *Server) client(ctx *fasthttp.RequestCtx) netip.Addr {
	return s.caller(ctx, time.Time{}).Client
}

// fromProxy reports whether the request's peer is a proxy this edge
// trusts to name the client (X-Forwarded-For) and its routing key: an
// address in TrustedProxies, or, with TrustClientCerts, any client whose
// certificate verified against the deployment's CA.
func (s *Server) fromProxy(ctx *fasthttp.RequestCtx, peer netip.Addr) bool {
	return s.trustsProxy(peer, ctx.IsTLS() && tlsfiles.Verified(ctx.TLSConnectionState()))
}

// trustsProxy is fromProxy for any transport: the peer's address, and
// whether its client certificate verified.
func (s *Server) trustsProxy(peer netip.Addr, verifiedCert bool) bool {
	return clientip.InAny(peer, s.cfg.TrustedProxies) || s.cfg.TrustClientCerts && verifiedCert
}

// b2s views bytes as a string without copying; the string must not
// outlive the bytes (fasthttp reuses request buffers).
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

var parsers fastjson.ParserPool

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
// "text" (required), "model" and "explain"; anything else is a 400. text
// views p's buffer.
func predictFields(p *fastjson.Parser, body []byte, inf *Inference) (text []byte, explain bool, err error) {
	obj, err := parseObject(p, body, `{"text": "..."}`)
	if err != nil {
		return nil, false, err
	}
	hasText := false
	err = eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		switch string(key) {
		case "model":
			ferr = modelField(val, inf)
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

func (s *Server) predict(ctx *fasthttp.RequestCtx, inf *Inference, id string) error {
	text, ok := plainText(ctx.PostBody())
	explain := false
	if !ok {
		p := parsers.Get()
		defer parsers.Put(p) // text views p's buffer until predict returns
		var err error
		if text, explain, err = predictFields(p, ctx.PostBody(), inf); err != nil {
			return err
		}
	}
	if err := s.checkText(text, "text"); err != nil {
		return err
	}
	inf.Texts = append(inf.Texts, text)
	if err := s.Infer(inf); err != nil {
		return err
	}
	var explained []inference.Contribution
	if explain {
		ex, ok := inf.Serving.Predictor.(inference.Explainer)
		if !ok {
			return httperr.New(fasthttp.StatusBadRequest, "model %q (%s) cannot explain its predictions", inf.Serving.Name, inf.Serving.Predictor.Platform())
		}
		explained = ex.Explain(string(text), 5)
	}
	b := make([]byte, 0, 256)
	b = appendPrediction(append(b, '{'), inf, 0)
	b = appendServing(b, inf.Serving, id)
	if explain {
		b = appendExplain(b, explained)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// modelField reads a request's "model": the name of a model this edge
// serves (checked by Infer).
func modelField(val *fastjson.Value, inf *Inference) error {
	name, err := val.StringBytes()
	if err != nil || len(name) == 0 {
		return httperr.New(fasthttp.StatusBadRequest, `"model" must be a model's name`)
	}
	inf.Model = b2s(name)
	return nil
}

// appendPrediction appends text i's fields: its most probable label, that
// label's probability as "score", and every label's as "probabilities".
func appendPrediction(b []byte, inf *Inference, i int) []byte {
	row, best := inf.Row(i), inf.Best[i]
	b = appendField(b, "label", inf.Labels[best], true)
	b = append(b, `,"score":`...)
	b = appendScore(b, row[best])
	b = append(b, `,"probabilities":{`...)
	for j, key := range inf.Serving.labelKeys {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendScore(append(b, key...), row[j])
	}
	return append(b, '}')
}

// appendServing appends the fields naming who answered: the model, its
// version, the region and the request ID.
func appendServing(b []byte, sv *Serving, id string) []byte {
	return appendField(append(b, sv.answer...), "request_id", id, false)
}

func appendExplain(b []byte, cs []inference.Contribution) []byte {
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

func (s *Server) predictBatch(ctx *fasthttp.RequestCtx, inf *Inference, id string) error {
	p := parsers.Get()
	defer parsers.Put(p)
	obj, err := parseObject(p, ctx.PostBody(), `{"texts": ["..."]}`)
	if err != nil {
		return err
	}
	var texts []*fastjson.Value
	ferr := eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		switch string(key) {
		case "model":
			return modelField(val, inf)
		case "texts":
			if texts, ferr = val.Array(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"texts" must be an array of strings`)
			}
			return ferr
		}
		return httperr.New(fasthttp.StatusBadRequest, "unknown field %q", key)
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
	for i, tv := range texts {
		text, err := tv.StringBytes()
		if err != nil {
			return httperr.New(fasthttp.StatusBadRequest, "texts[%d] is not a string", i)
		}
		if err := s.checkText(text, fmt.Sprintf("texts[%d]", i)); err != nil {
			return err
		}
		inf.Texts = append(inf.Texts, text)
	}
	if err := s.Infer(inf); err != nil {
		return err
	}
	b := make([]byte, 0, 64+96*len(texts))
	b = append(b, `{"predictions":[`...)
	for i := range inf.Texts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendPrediction(append(b, '{'), inf, i), '}')
	}
	b = append(b, ']')
	b = appendServing(b, inf.Serving, id)
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

// notReady says why the edge should not take traffic; nil when it
// should: it is not draining and every model it serves has a version.
func (s *Server) notReady() error {
	if s.draining.Load() {
		return httperr.New(fasthttp.StatusServiceUnavailable, "draining")
	}
	if sl := s.unready(); sl != nil {
		return sl.notLoaded()
	}
	return nil
}

// protocolReady is /v2/health/ready: {"ready": true}, or as the protocol
// has it a 4xx with "ready": false.
func (s *Server) protocolReady(ctx *fasthttp.RequestCtx, _ *Serving, id string) error {
	return writeHealth(ctx, `{"ready":`, s.notReady(), id)
}

// modelState is one model in /health/ready.
type modelState struct {
	Name        string     `json:"name"`
	Version     string     `json:"version"`
	Digest      string     `json:"digest"`
	Source      string     `json:"source"`
	Candidate   string     `json:"candidate,omitempty"`
	Loading     *Loading   `json:"loading,omitempty"`
	LastRefused *Refusal   `json:"last_refused,omitempty"`
	MiB         float64    `json:"mib"`
	LoadedAt    *time.Time `json:"loaded_at,omitempty"`
}

func (sl *Slot) state() modelState {
	st := modelState{Name: sl.name, Loading: sl.loading.Load(), LastRefused: sl.refused.Load()}
	if sv := sl.current.Load(); sv != nil {
		st.Version, st.Digest, st.Source, st.MiB, st.LoadedAt = sv.Version, sv.Digest, sv.Source, mib(sv.Bytes), &sv.LoadedAt
	}
	if c := sl.candidate.Load(); c != nil {
		st.Candidate = c.Serving.Version
	}
	return st
}

// ready is /health/ready, for Consul and Kubernetes: 503 when not ready,
// else what is served: the default model's version at the top (as before
// an edge served several) and every model's in "models".
func (s *Server) ready(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	if err := s.notReady(); err != nil {
		return err
	}
	models := make([]modelState, len(s.slots))
	for i, sl := range s.slots {
		models[i] = sl.state()
	}
	return writeJSON(ctx, struct {
		Ready      bool         `json:"ready"`
		Status     string       `json:"status"`
		Model      string       `json:"model"` // the first model's name, as before an edge served several
		modelState              // the first model's version, digest, source, loading and refusal
		Models     []modelState `json:"models"`
		Budget     *budgetState `json:"memory_budget,omitempty"`
	}{true, "ready", models[0].Name, models[0], models, s.budgetState()})
}
