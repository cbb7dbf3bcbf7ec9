// Package clientip finds the client's address behind trusted proxies.
package clientip

import (
	"net"
	"net/netip"
)

// Addr is the peer's address, or, when the peer is a trusted proxy,
// the right-most address in X-Forwarded-For that is not itself a trusted
// proxy (the left part of the header is whatever the client claimed).
func Addr(peer net.IP, xff []byte, trusted []netip.Prefix) netip.Addr {
	addr, ok := netip.AddrFromSlice(peer)
	if !ok {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if len(trusted) == 0 || len(xff) == 0 || !InAny(addr, trusted) {
		return addr
	}
	rest := string(xff)
	for rest != "" {
		i := len(rest) - 1
		for i >= 0 && rest[i] != ',' {
			i--
		}
		item := trimSpace(rest[i+1:])
		rest = rest[:max(i, 0)]
		a, err := netip.ParseAddr(item)
		if err != nil {
			return addr // garbage: stop at the last address we trust
		}
		a = a.Unmap()
		if !InAny(a, trusted) {
			return a
		}
		addr = a
		if i < 0 {
			break
		}
	}
	return addr
}

// InAny reports whether a is in one of the prefixes.
func InAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
