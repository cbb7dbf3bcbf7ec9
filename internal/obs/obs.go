// Package obs holds what every binary shares for observability: the JSON
// slog logger, request IDs, client-IP truncation for logs, and the
// Prometheus exposition of VictoriaMetrics/metrics.
package obs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// NewLogger returns a JSON logger at level ("debug", "info", "warn",
// "error"), tagged with the service name.
func NewLogger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", service), nil
}

// NewRequestID returns a random 16-byte hex ID.
func NewRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ValidRequestID accepts a client-supplied X-Request-ID only if it is short
// and made of safe characters, so it can be echoed and logged as is.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// TruncateIP keeps the network part of an address for logs: /24 of IPv4,
// /48 of IPv6. Full client addresses are personal data and never logged.
func TruncateIP(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return "invalid"
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.Mask(net.CIDRMask(24, 32)).String() + "/24"
	}
	return ip.Mask(net.CIDRMask(48, 128)).String() + "/48"
}

// MetricsHandler serves every registered metric in Prometheus text format,
// with the Go runtime and process metrics.
func MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metrics.WritePrometheus(w, true)
	})
}

// PrintfLogger sends the Printf-style messages of libraries such as
// fasthttp to a slog logger at Level, so they land in the JSON log.
type PrintfLogger struct {
	Log   *slog.Logger
	Level slog.Level
}

// Printf logs one message.
func (l PrintfLogger) Printf(format string, args ...any) {
	l.Log.Log(context.Background(), l.Level, fmt.Sprintf(format, args...))
}

// RequestIDs makes cheap unique request IDs for hot paths: a random
// per-process prefix and a counter, e.g. "3f2a9c1b7d0e-1a".
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs returns a generator with a fresh random prefix.
func NewRequestIDs() *RequestIDs { return &RequestIDs{prefix: NewRequestID()[:12]} }

// Append appends the next ID to dst.
func (g *RequestIDs) Append(dst []byte) []byte {
	dst = append(dst, g.prefix...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, g.n.Add(1), 16)
}

// LatencyBuckets are histogram upper bounds in seconds from first (10 µs
// at the edge, whose handler takes microseconds; 100 µs at the router) to
// 10 s, in steps of 1, 2.5 and 5 per decade, so a p50 of a few
// microseconds and a p99 of seconds both land inside the histogram.
func LatencyBuckets(first float64) []float64 {
	var out []float64
	for decade := first; decade < 10; decade *= 10 {
		for _, m := range []float64{1, 2.5, 5} {
			if v := decade * m; v <= 10 {
				out = append(out, v)
			}
		}
	}
	return append(out, 10)
}
