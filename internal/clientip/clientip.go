// Package clientip finds the client's address behind trusted proxies.
package clientip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ParsePrefixes reads comma-separated CIDRs (-trusted-proxies,
// -webhook-deny).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("cannot parse CIDR %q: %w", item, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// AppendForwardedFor appends to dst the X-Forwarded-For a proxy sends
// on: the one it received (xff) with the connection peer's address added.
func AppendForwardedFor(dst, xff []byte, peer net.IP) []byte {
	dst = append(dst, xff...)
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return dst
	}
	if len(xff) > 0 {
		dst = append(dst, ", "...)
	}
	return ip.Unmap().AppendTo(dst)
}

// Addr is the peer's address, or, when the peer is a trusted proxy,
// the client it forwarded for (see Forwarded).
func Addr(peer net.IP, xff []byte, trusted []netip.Prefix) netip.Addr {
	addr := Of(peer)
	if len(xff) == 0 || !InAny(addr, trusted) {
		return addr
	}
	return Forwarded(addr, xff, trusted)
}

// Of is peer as an address (IPv4 unmapped), or the zero Addr.
func Of(peer net.IP) netip.Addr {
	addr, _ := netip.AddrFromSlice(peer)
	return addr.Unmap()
}

// Forwarded is the client behind peer, a proxy already trusted (by its
// address, or by the certificate it presented): the right-most address in
// X-Forwarded-For that is not itself a trusted proxy (the left part of the
// header is whatever the client claimed). It is peer when xff names
// nobody usable.
func Forwarded(peer netip.Addr, xff []byte, trusted []netip.Prefix) netip.Addr {
	addr := peer
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
