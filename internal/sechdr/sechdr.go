// Package sechdr lists the security headers every answer of the public
// HTTP services carries: OWASP's for APIs, and HSTS when the answer goes
// out over TLS. internal/frontdoor sets them on the fasthttp servers.
package sechdr

// Headers are the security headers, name and value, their names
// pre-canonicalised so that setting them skips fasthttp's normalisation on
// the hot path.
var Headers = [][2][]byte{
	{[]byte("X-Content-Type-Options"), []byte("nosniff")},
	{[]byte("X-Frame-Options"), []byte("DENY")},
	{[]byte("Referrer-Policy"), []byte("no-referrer")},
	{[]byte("Content-Security-Policy"), []byte("default-src 'none'; frame-ancestors 'none'")},
	{[]byte("Cache-Control"), []byte("no-store")},
}

// HSTS is Strict-Transport-Security, name and value: for answers over TLS.
var HSTS = [2][]byte{[]byte("Strict-Transport-Security"), []byte("max-age=63072000; includeSubDomains")}
