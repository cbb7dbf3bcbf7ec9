//go:build tools

// Package consul only anchors the Consul agent dependency for `go build`.
package consul

import _ "github.com/hashicorp/consul"
