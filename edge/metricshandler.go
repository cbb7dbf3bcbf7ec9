package edge

import (
	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// fasthttpadaptorMetrics serves every registered metric in Prometheus text
// format, with Go runtime and process metrics.
func fasthttpadaptorMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4")
	metrics.WritePrometheus(ctx, true)
}
