package tlsfiles

import (
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/sechdr"
)

const needCert = "this endpoint needs a client certificate signed by the deployment's CA"

// RequireClientCert wraps h so that, when s is mutual, a request without a
// verified client certificate gets 403, except a health probe.
func (s Server) RequireClientCert(h http.Handler) http.Handler {
	if !s.Mutual() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Verified(r.TLS) || Exempt(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		id := r.Header.Get("X-Request-ID")
		if !obs.ValidRequestID(id) {
			id = obs.NewRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		httperr.WriteHTTP(w, httperr.New(http.StatusForbidden, needCert), id)
	})
}

// RequireClientCertFast is RequireClientCert for fasthttp.
func (s Server) RequireClientCertFast(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if !s.Mutual() {
		return h
	}
	return func(ctx *fasthttp.RequestCtx) {
		if Verified(ctx.TLSConnectionState()) || Exempt(string(ctx.Path())) {
			h(ctx)
			return
		}
		id := string(ctx.Request.Header.Peek("X-Request-ID"))
		if !obs.ValidRequestID(id) {
			id = obs.NewRequestID()
		}
		ctx.Response.Header.Set("X-Request-Id", id)
		sechdr.Set(&ctx.Response.Header, true)
		httperr.WriteFast(ctx, httperr.New(fasthttp.StatusForbidden, needCert), id)
	}
}
