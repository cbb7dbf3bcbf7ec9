// Package forward is the one policy the fasthttp hops forward a request
// by: the geo router to an edge, and an edge with no model yet to a peer
// region. The client's request travels in place (fasthttp keeps it intact
// across attempts), so a hop copies nothing but the answer; what changes
// on the way is written here once.
package forward

import (
	"bytes"
	"crypto/tls"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// ServedRegion names, in an answer, the region whose edge computed it. The
// hop that picked the region sets it; when an edge without a model had a
// peer region answer, the peer's region stays (the innermost hop knows).
const ServedRegion = "X-Served-Region"

// RoutingKey is the sticky key of a rollout's split (edge/split.go). Only a
// trusted proxy's is forwarded: a client's own would let it pick the
// version that answers it and steer the figures a rollout is judged on.
const RoutingKey = "X-Routing-Key"

// hopByHop are the headers meant for one connection only (RFC 9110
// §7.6.1), Proxy-Authorization, which is meant for this proxy, and Expect:
// the hop has answered a 100-continue and holds the whole body, so the next
// one has nothing to confirm (and its 100 answer would read as a failed
// attempt). None is forwarded.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "TE", "Transfer-Encoding", "Upgrade",
	"Trailer", "Proxy-Authorization", "Proxy-Authenticate", "Expect"}

// NewClient returns the client a hop forwards with: requests go on as the
// next hop should see them (no path or header-name rewriting, no
// User-Agent of its own), each attempt bounded by timeout; with tlsCfg,
// over https.
func NewClient(name string, timeout time.Duration, tlsCfg *tls.Config) *fasthttp.Client {
	return &fasthttp.Client{Name: name, MaxConnsPerHost: 1024, MaxIdleConnDuration: 30 * time.Second,
		DisablePathNormalizing: true, DisableHeaderNamesNormalizing: true, NoDefaultUserAgentHeader: true,
		ReadTimeout: timeout, WriteTimeout: timeout, TLSConfig: tlsCfg,
		Dial: (&fasthttp.TCPDialer{Concurrency: 1000}).Dial}
}

// Prepare rewrites the client's request in place into the one this hop
// (named by, in Via) sends on; trusted says the client is a proxy this hop
// believes. id is the request's ID: it goes on as X-Request-ID. Call it
// once per request, before the attempts.
func Prepare(ctx *fasthttp.RequestCtx, id string, trusted bool, by string) {
	req := &ctx.Request
	h := &req.Header
	if mayCarryRemoved(h, !trusted) {
		stripHopByHop(h)
		if !trusted {
			h.Del(RoutingKey)
		}
	}
	frontdoor.DropOrphanTraceState(h) // before the attempts set their traceparent
	var buf [128]byte
	h.SetCanonical(forwardedForKey, clientip.AppendForwardedFor(buf[:0], h.PeekCanonical(forwardedForKey), ctx.RemoteIP()))
	// Via names the protocol the client spoke: before it changes.
	h.SetCanonical(viaKey, appendVia(buf[:0], h.PeekCanonical(viaKey), h.Protocol(), by))
	// A hop's connections carry many clients' requests, pipelined. An
	// HTTP/1.0 request forwarded as it came implies Connection: close, and
	// the next hop's close would fail the requests queued behind it: every
	// hop speaks HTTP/1.1 (the client's own connection still closes as its
	// protocol says).
	h.SetProtocol("HTTP/1.1")
	h.ResetConnectionClose()
	h.SetCanonical(requestIDKey, unsafe.Slice(unsafe.StringData(id), len(id))) // copied
}

// The names Prepare sets, as fasthttp stores a parsed request's header
// names (normalised): setting them so skips normalising them again.
var (
	forwardedForKey = []byte("X-Forwarded-For")
	viaKey          = []byte("Via")
	requestIDKey    = []byte("X-Request-Id")
)

// Attempt points the prepared request at one upstream (host:port, over
// scheme) as a new span of the request's trace.
func Attempt(req *fasthttp.Request, scheme, addr string, span tracectx.Context) {
	req.URI().SetScheme(scheme)
	req.SetHost(addr)
	frontdoor.SetTraceRequestHeader(&req.Header, span)
}

// MarkServed names region in the answer, unless an inner hop already did.
func MarkServed(h *fasthttp.ResponseHeader, region string) {
	if len(h.PeekCanonical(servedRegionKey)) == 0 {
		h.SetCanonical(servedRegionKey, unsafe.Slice(unsafe.StringData(region), len(region))) // copied
	}
}

// servedRegionKey is ServedRegion as fasthttp stores a parsed header name.
var servedRegionKey = []byte(ServedRegion)

// stripHopByHop removes the hop-by-hop headers and every header the
// Connection header names.
func stripHopByHop(h *fasthttp.RequestHeader) {
	if conn := h.Peek("Connection"); len(conn) > 0 {
		var buf [128]byte
		names := append(buf[:0], conn...) // Peek's bytes move as headers are deleted
		for len(names) > 0 {
			var name []byte
			name, names, _ = bytes.Cut(names, []byte(","))
			if name = bytes.TrimSpace(name); len(name) > 0 {
				h.DelBytes(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// mayCarryRemoved reports whether h may carry a header Prepare removes: a
// hop-by-hop one, or with routingKey the routing key. It reads the header
// block as it arrived, one pass, so the common request, which carries
// none, skips the removals (each copies and normalises a name, then scans
// every header). A request whose block is not at hand (not parsed by a
// server) or with a chunked body (trailers) may carry anything.
func mayCarryRemoved(h *fasthttp.RequestHeader, routingKey bool) bool {
	raw := h.RawHeaders()
	if len(raw) == 0 || h.ContentLength() == -1 {
		return true
	}
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if routingKey && bytes.EqualFold(name, []byte(RoutingKey)) {
			return true
		}
		for _, hop := range hopByHop {
			if len(name) == len(hop) && bytes.EqualFold(name, []byte(hop)) {
				return true
			}
		}
	}
	return false
}

// appendVia appends to dst the Via a gateway named by sends on (RFC 9110
// §7.6.3): the Via it received (any, kept as it came), then the protocol
// version it received the request in ("1.1" for "HTTP/1.1"; HTTP's name is
// left out, as the RFC has it) and its name. It records the hops a request
// took, so an edge's logs show an answer came through the router, and a
// forwarding loop shows as the same name again.
func appendVia(dst, received, protocol []byte, by string) []byte {
	dst = append(dst, received...)
	if len(received) > 0 {
		dst = append(dst, ", "...)
	}
	if len(protocol) > 5 && string(protocol[:5]) == "HTTP/" {
		protocol = protocol[5:]
	}
	dst = append(dst, protocol...)
	dst = append(dst, ' ')
	return append(dst, by...)
}
