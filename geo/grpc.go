package geo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/tracectx"
)

// The gRPC front door: clients of the Open Inference Protocol over gRPC
// call the router, which places them as it places REST clients (the
// x-region metadata or their address), forwards each call, unread, to an
// edge of the nearest healthy region, and fails over to the next region
// when the edge cannot be reached or answers UNAVAILABLE (nothing was
// answered yet, and inference is idempotent). The regions' breakers,
// retry budget and rate limit are REST's. The router's own
// grpc.health.v1 says whether it can route.

// grpcService is the forwarded service; its calls are all unary.
const grpcService = "/inference.GRPCInferenceService/"

// rawFrame is a message the router forwards without decoding.
type rawFrame struct{ b []byte }

// proxyCodec passes forwarded messages through as bytes, and encodes the
// router's own (its health service's) as protobuf.
type proxyCodec struct{}

func (proxyCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *rawFrame:
		return m.b, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("geo: cannot encode a %T", v)
}

func (proxyCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *rawFrame:
		m.b = append(m.b[:0], data...)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("geo: cannot decode into a %T", v)
}

func (proxyCodec) Name() string { return "proto" }

// grpcEdges are the edges' gRPC addresses, per region, and a client
// connection per address.
type grpcEdges struct {
	mu    sync.RWMutex
	addrs map[string][]string
	conns map[string]*grpc.ClientConn
}

// UpdateGRPC replaces a region's edges' gRPC addresses (from Consul: the
// grpc_port meta of its healthy edges). Connections to edges no region
// lists any more are closed: edges come and go with their addresses.
// An edge dropped for a moment (a failing check) is dialled again when it
// comes back.
func (r *Router) UpdateGRPC(region string, addrs []string) {
	g := &r.grpc
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.addrs == nil {
		g.addrs = map[string][]string{}
	}
	g.addrs[region] = addrs
	listed := map[string]bool{}
	for _, list := range g.addrs {
		for _, a := range list {
			listed[a] = true
		}
	}
	for a, c := range g.conns {
		if !listed[a] {
			c.Close()
			delete(g.conns, a)
		}
	}
}

// grpcConn returns a connection to one of region's edges, at random.
func (r *Router) grpcConn(region string) (*grpc.ClientConn, string, error) {
	g := &r.grpc
	g.mu.RLock()
	addrs := g.addrs[region]
	g.mu.RUnlock()
	if len(addrs) == 0 {
		return nil, "", nil
	}
	addr := addrs[rand.IntN(len(addrs))]
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.conns[addr]; c != nil {
		return c, addr, nil
	}
	creds := insecure.NewCredentials()
	if r.cfg.EdgeTLS != nil {
		creds = credentials.NewTLS(r.cfg.EdgeTLS.Clone())
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.ForceCodec(proxyCodec{})))
	if err != nil {
		return nil, "", err
	}
	if g.conns == nil {
		g.conns = map[string]*grpc.ClientConn{}
	}
	g.conns[addr] = c
	return c, addr, nil
}

// NewGRPCServer returns the router's gRPC server: the inference service
// forwarded, grpc.health.v1 answered by the router. opts add e.g. TLS.
func (r *Router) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{grpc.UnknownServiceHandler(r.forwardGRPC), grpc.ForceServerCodec(proxyCodec{}),
		grpc.MaxRecvMsgSize(8 << 20)}, opts...)
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, &routerHealth{r: r})
	return gs
}

var (
	grpcCalls     = metrics.NewCounter(`geo_grpc_calls_total`)
	grpcFailovers = metrics.NewCounter(`geo_grpc_failovers_total`)
)

// forwardGRPC forwards one unary call of the inference service.
func (r *Router) forwardGRPC(_ any, ss grpc.ServerStream) error {
	start := time.Now()
	grpcCalls.Inc()
	method, _ := grpc.MethodFromServerStream(ss)
	if !strings.HasPrefix(method, grpcService) {
		return status.Errorf(codes.Unimplemented, "the router forwards %s* calls only, not %s", grpcService, method)
	}
	ctx := ss.Context()
	in, _ := metadata.FromIncomingContext(ctx)
	id, tc, ok := frontdoor.GRPCCall(in)
	if !ok {
		tc = tracectx.New(false)
	}
	peerAddr := grpcPeer(ctx)
	client := peerAddr
	if xff := in.Get("x-forwarded-for"); len(xff) > 0 && clientip.InAny(peerAddr, r.cfg.TrustedProxies) {
		client = clientip.Forwarded(peerAddr, []byte(xff[len(xff)-1]), r.cfg.TrustedProxies)
	}
	ss.SetHeader(metadata.Pairs("x-request-id", id))
	if r.door.Limiter != nil {
		if ok, _ := r.door.Limiter.Allow(client, start); !ok {
			r.door.Limited.Inc()
			return status.Errorf(codes.ResourceExhausted, "rate limit exceeded: %.0f requests per minute", r.cfg.RatePerMinute)
		}
	}
	var req rawFrame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	order, _ := r.cfg.Locator.Order(frontdoor.FirstMD(in, strings.ToLower(r.cfg.HintHeader)), client)
	out := forwardMD(in, id, client, peerAddr)
	return r.grpcAttempts(ss, method, &req, out, order, tc, id)
}

// grpcAttempts tries the regions in order, as proxy does for REST.
func (r *Router) grpcAttempts(ss grpc.ServerStream, method string, req *rawFrame, out metadata.MD, order []string, tc tracectx.Context, id string) error {
	ctx := ss.Context()
	sec := time.Now().Unix()
	r.budget.request(sec)
	attempts, failovers := 0, 0
	var lastErr error
	for _, region := range order {
		if attempts >= r.cfg.MaxAttempts {
			break
		}
		conn, addr, err := r.grpcConn(region)
		pool := r.poolOf(region)
		if err != nil || conn == nil || pool == nil {
			continue
		}
		done, verdict := r.admit(pool, attempts, sec)
		if verdict == stopTrying {
			break
		}
		if verdict == skipRegion {
			continue
		}
		attempts++
		md := out.Copy()
		md.Set("traceparent", string(tc.Child().Append(nil)))
		actx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), r.cfg.PerTryTimeout)
		var resp rawFrame
		var header, trailer metadata.MD
		t0 := time.Now()
		err = conn.Invoke(actx, method, req, &resp, grpc.Header(&header), grpc.Trailer(&trailer))
		cancel()
		if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded && ctx.Err() == nil {
			// Nothing was answered: the next region may.
			done(err)
			pool.observe(t0, time.Now(), err)
			lastErr = fmt.Errorf("%s in %s: %w", addr, region, err)
			failovers++
			grpcFailovers.Inc()
			failoverTotal.Inc()
			continue
		}
		done(nil) // an answer, an error one included, is the edge working
		pool.observe(t0, time.Now(), nil)
		header.Set("x-served-region", region)
		header.Set("x-failovers", strconv.Itoa(failovers))
		header.Delete("x-request-id") // already set, and the edge's is the same
		ss.SetHeader(header)
		ss.SetTrailer(trailer)
		if err != nil {
			return err
		}
		return ss.SendMsg(&resp)
	}
	r.log.Debug("no region answered a grpc call", "request_id", id, "method", method, "attempts", attempts, "err", lastErr)
	return status.Error(codes.Unavailable, "no healthy region could answer")
}

// poolOf is region's pool (its breaker and metrics), nil if unknown.
func (r *Router) poolOf(region string) *regionPool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pools[region]
}

// forwardMD is the metadata sent to the edge: the client's, without
// transport-level keys, with the request ID and the client appended to
// x-forwarded-for.
func forwardMD(in metadata.MD, id string, client, peerAddr netip.Addr) metadata.MD {
	out := metadata.MD{}
	for k, v := range in {
		if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") || k == "content-type" || k == "user-agent" || k == "te" ||
			k == "x-forwarded-for" || k == "traceparent" {
			continue
		}
		out[k] = v
	}
	xff := peerAddr.String()
	if prior := in.Get("x-forwarded-for"); len(prior) > 0 && client != peerAddr {
		xff = prior[len(prior)-1] + ", " + xff
	}
	out.Set("x-forwarded-for", xff)
	out.Set("x-request-id", id)
	return out
}

func grpcPeer(ctx context.Context) netip.Addr {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return netip.Addr{}
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return clientip.Of(tcp.IP)
	}
	return netip.Addr{}
}

// routerHealth is the router's grpc.health.v1: SERVING while it is ready
// (not draining, some region has a healthy edge), as /health/ready.
type routerHealth struct {
	healthpb.UnimplementedHealthServer
	r *Router
}

func (h *routerHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if s := req.GetService(); s != "" && s != strings.Trim(grpcService, "/") {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", s)
	}
	if h.r.Ready() {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
}
