package tlsfiles

import (
	"net/http"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
)

// NeedCert is the refusal of a request without a client certificate.
const NeedCert = "this endpoint needs a client certificate signed by the deployment's CA"

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
		httperr.WriteHTTP(w, httperr.New(http.StatusForbidden, NeedCert), id)
	})
}
