package geo

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"
)

// Probe is static discovery with active health checks, for set-ups without
// Consul (`make run`): every interval it asks each edge's /health/ready
// (over the router's own client, so with its TLS settings) and gives the
// router the ones that answer 200.
func Probe(ctx context.Context, r *Router, region string, addrs []string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var healthy []string
		for _, a := range addrs {
			code, _, err := r.client.GetTimeout(nil, r.scheme+"://"+a+"/health/ready", interval)
			if err == nil && code == fasthttp.StatusOK {
				healthy = append(healthy, a)
			}
		}
		r.Update(region, healthy)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
