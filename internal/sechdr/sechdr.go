// Package sechdr sets the security headers every answer of the public
// HTTP services (edge, geo router) carries: OWASP's for APIs, and HSTS
// when the answer goes out over TLS.
package sechdr

import "github.com/valyala/fasthttp"

// headers are pre-canonicalised, so setting them skips fasthttp's
// normalisation on the hot path.
var headers = [][2][]byte{
	{[]byte("X-Content-Type-Options"), []byte("nosniff")},
	{[]byte("X-Frame-Options"), []byte("DENY")},
	{[]byte("Referrer-Policy"), []byte("no-referrer")},
	{[]byte("Content-Security-Policy"), []byte("default-src 'none'; frame-ancestors 'none'")},
	{[]byte("Cache-Control"), []byte("no-store")},
}

var (
	hstsKey   = []byte("Strict-Transport-Security")
	hstsValue = []byte("max-age=63072000; includeSubDomains")
)

// Set sets the headers on h, and Strict-Transport-Security when tls.
func Set(h *fasthttp.ResponseHeader, tls bool) {
	for _, kv := range headers {
		h.SetCanonical(kv[0], kv[1])
	}
	if tls {
		SetHSTS(h)
	}
}

// SetHSTS sets Strict-Transport-Security alone: for an answer relayed
// from a service that set the rest, over TLS it did not terminate.
func SetHSTS(h *fasthttp.ResponseHeader) { h.SetCanonical(hstsKey, hstsValue) }
