//go:build tools

// Package coredns only anchors the CoreDNS dependency for `go build`.
package coredns

import _ "github.com/coredns/coredns"
