// Package via builds the Via header a gateway adds to each request it
// forwards (RFC 9110 §7.6.3): the geo router to an edge, an edge to a
// peer. It records the hops a request took, so an edge's logs and a
// packet capture show that an answer came through the router, and a
// forwarding loop shows as the same name again.
package via

// Append appends to dst the Via a gateway named by sends on: the Via it
// received (any, kept as it came), then the protocol version it received
// the request in ("1.1" for "HTTP/1.1"; HTTP's name is left out, as the
// RFC has it) and its name.
func Append(dst, received, protocol []byte, by string) []byte {
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
