//go:build tools

// Package versitygw only anchors the versitygw server dependency for `go build`.
package versitygw

import _ "github.com/versity/versitygw/cmd/versitygw"
