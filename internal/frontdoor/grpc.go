package frontdoor

import (
	"google.golang.org/grpc/metadata"

	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// GRPCCall reads what a gRPC call's metadata says of it, as Enter does for
// an HTTP request: its request ID (x-request-id when valid, else a new
// one) and the caller's trace context (traceparent; continued says there
// was a valid one).
func GRPCCall(md metadata.MD) (id string, tc tracectx.Context, continued bool) {
	id = FirstMD(md, "x-request-id")
	if !obs.ValidRequestID(id) {
		id = obs.NewRequestID()
	}
	tc, continued = tracectx.Parse([]byte(FirstMD(md, "traceparent")))
	return id, tc, continued
}

// FirstMD is md's first value for key, or "".
func FirstMD(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
