//go:build tools

// Package staticcheck only anchors the staticcheck dependency for `go build`.
package staticcheck

import _ "honnef.co/go/tools/cmd/staticcheck"
