package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/internal/tracectx"
	"github.com/sentimentpro/sentiment/oippb"
)

// The Open Inference Protocol over gRPC (inference.GRPCInferenceService,
// oippb) and grpc.health.v1, on a listener of its own. A call goes through
// grpcFront (request ID and trace from metadata, the caller behind trusted
// proxies, the rate limit, metrics, the access log), then the same
// inference core and checks as REST: the same texts are refused with the
// same messages, as gRPC status codes.

// grpcService implements oippb.GRPCInferenceServiceServer over a Server.
type grpcService struct {
	oippb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// NewGRPCServer returns a gRPC server with the edge's inference service,
// health service and server reflection; opts add e.g. TLS credentials. With requireCert
// (mutual TLS), a call without a verified client certificate is refused,
// a health check excepted, as on the REST listener.
func (s *Server) NewGRPCServer(requireCert bool, opts ...grpc.ServerOption) *grpc.Server {
	front := s.grpcFront
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, ss)
	}
	if requireCert {
		front = func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := needCert(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return s.grpcFront(ctx, req, info, handler)
		}
		stream = func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := needCert(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return handler(srv, ss)
		}
	}
	opts = append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(front),
		grpc.ChainStreamInterceptor(stream),
		grpc.MaxRecvMsgSize(s.cfg.MaxBodyBytes),
		grpc.MaxConcurrentStreams(256),
	}, opts...)
	gs := grpc.NewServer(opts...)
	oippb.RegisterGRPCInferenceServiceServer(gs, &grpcService{s: s})
	healthpb.RegisterHealthServer(gs, &grpcHealth{s: s})
	// Server reflection: grpcurl and similar tools discover the services
	// without the proto file (the protocol is public).
	reflection.Register(gs)
	return gs
}

// grpcCall is what grpcFront learned about a call.
type grpcCall struct {
	id     string
	caller Caller
}

type grpcCallKey struct{}

const inferMethod = "/inference.GRPCInferenceService/ModelInfer"

// grpcFront is the gRPC front door: the REST front door's duties for a
// unary call.
func (s *Server) grpcFront(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	md, _ := metadata.FromIncomingContext(ctx)
	id, tc, ok := frontdoor.GRPCCall(md)
	if ok {
		tc = tc.Child()
	} else {
		tc = tracectx.New(s.door.Access.Sample())
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id, "traceparent", string(tc.Append(nil))))
	call := grpcCall{id: id, caller: s.grpcCaller(ctx, md, start)}
	var resp any
	var err error
	if info.FullMethod == inferMethod {
		err = s.grpcAdmit(call.caller.Client, start)
	}
	if err == nil {
		resp, err = handler(context.WithValue(ctx, grpcCallKey{}, call), req)
	}
	st := grpcStatus(err)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	seconds := time.Since(start).Seconds()
	gm := grpcMetricsFor(method)
	gm.count(st.Code()).Inc()
	gm.latency.Update(seconds)
	if c := st.Code(); c == codes.Internal || c == codes.Unavailable || c == codes.ResourceExhausted {
		s.log.Warn("grpc call failed", "request_id", id, "trace_id", tc.TraceIDString(), "method", method, "code", c.String(),
			"err", st.Message(), "client", obs.TruncateIP(call.caller.Client.String()))
	}
	if tc.Flags&1 != 0 || s.door.Access.Sample() {
		s.door.Access.Log.Info("grpc", "request_id", id, "trace_id", tc.TraceIDString(), "method", method, "code", st.Code().String(),
			"duration_ms", seconds*1000, "client", obs.TruncateIP(call.caller.Client.String()))
	}
	if err != nil {
		return nil, st.Err()
	}
	return resp, nil
}

// grpcMetrics are one method's series, made once: edge_grpc_requests_total
// by code and edge_grpc_request_duration_seconds.
type grpcMetrics struct {
	method  string
	latency *metrics.PrometheusHistogram
	codes   [17]atomic.Pointer[metrics.Counter] // by codes.Code, OK to Unauthenticated
}

var grpcMethods sync.Map // method -> *grpcMetrics

func grpcMetricsFor(method string) *grpcMetrics {
	if m, ok := grpcMethods.Load(method); ok {
		return m.(*grpcMetrics)
	}
	m := &grpcMetrics{method: method,
		latency: metrics.GetOrCreatePrometheusHistogramExt(`edge_grpc_request_duration_seconds{method="`+method+`"}`, latencyBuckets)}
	actual, _ := grpcMethods.LoadOrStore(method, m)
	return actual.(*grpcMetrics)
}

func (m *grpcMetrics) count(code codes.Code) *metrics.Counter {
	if int(code) >= len(m.codes) {
		code = codes.Unknown
	}
	if c := m.codes[code].Load(); c != nil {
		return c
	}
	c := metrics.GetOrCreateCounter(`edge_grpc_requests_total{method="` + m.method + `",code="` + code.String() + `"}`)
	m.codes[code].Store(c)
	return c
}

// grpcAdmit applies the client's rate limit, as REST's front door does.
func (s *Server) grpcAdmit(client netip.Addr, now time.Time) error {
	if s.door.Limiter == nil {
		return nil
	}
	if ok, _ := s.door.Limiter.Allow(client, now); ok {
		return nil
	}
	s.door.Limited.Inc()
	return httperr.New(fasthttp.StatusTooManyRequests, "rate limit exceeded: %.0f requests per minute", s.door.RatePerMinute)
}

// grpcCaller is the call's client: the peer, or the address and routing
// key a trusted proxy forwarded in metadata (x-forwarded-for,
// x-routing-key).
func (s *Server) grpcCaller(ctx context.Context, md metadata.MD, now time.Time) Caller {
	var c Caller
	c.Now = now
	p, ok := peer.FromContext(ctx)
	if !ok {
		return c
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		c.Client = clientip.Of(tcp.IP)
	}
	if !s.trustsProxy(c.Client, verifiedPeer(ctx)) {
		return c
	}
	if xff := md.Get("x-forwarded-for"); len(xff) > 0 {
		c.Client = clientip.Forwarded(c.Client, []byte(xff[len(xff)-1]), s.cfg.TrustedProxies)
	}
	if k := frontdoor.FirstMD(md, "x-routing-key"); k != "" {
		c.Key = []byte(k[:min(len(k), maxRoutingKey)])
	}
	return c
}

// needCert refuses a call without a verified client certificate, but for
// the health service (probes present none).
func needCert(ctx context.Context, method string) error {
	if strings.HasPrefix(method, "/grpc.health.v1.") || verifiedPeer(ctx) {
		return nil
	}
	return status.Error(codes.PermissionDenied, tlsfiles.NeedCert)
}

// verifiedPeer reports whether the call's client certificate verified
// against the deployment's CA.
func verifiedPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && tlsfiles.Verified(&ti.State)
}

// grpcStatus maps an error of the edge (an httperr.Error, or a status
// already) to the gRPC status with the same message as REST's body.
func grpcStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	if errors.Is(err, context.Canceled) {
		return status.New(codes.Canceled, "the call was cancelled")
	}
	httpCode, msg := httperr.From(err)
	code := codes.Unknown
	switch httpCode {
	case fasthttp.StatusBadRequest:
		code = codes.InvalidArgument
	case fasthttp.StatusNotFound:
		code = codes.NotFound
	case fasthttp.StatusRequestEntityTooLarge, fasthttp.StatusTooManyRequests:
		code = codes.ResourceExhausted
	case fasthttp.StatusServiceUnavailable:
		code = codes.Unavailable
	case fasthttp.StatusForbidden:
		code = codes.PermissionDenied
	case fasthttp.StatusInternalServerError:
		code = codes.Internal
	}
	return status.New(code, msg)
}

func (g *grpcService) ServerLive(context.Context, *oippb.ServerLiveRequest) (*oippb.ServerLiveResponse, error) {
	return &oippb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *oippb.ServerReadyRequest) (*oippb.ServerReadyResponse, error) {
	return &oippb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

// model is the version a call names, as REST's routes find it.
func (g *grpcService) model(name, version string) (*Serving, error) {
	return g.s.model(name, version)
}

func (g *grpcService) ModelReady(_ context.Context, req *oippb.ModelReadyRequest) (*oippb.ModelReadyResponse, error) {
	_, err := g.model(req.GetName(), req.GetVersion())
	if code, _ := httperr.From(err); err != nil && code == fasthttp.StatusNotFound {
		return nil, err
	}
	return &oippb.ModelReadyResponse{Ready: err == nil && !g.s.draining.Load()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *oippb.ServerMetadataRequest) (*oippb.ServerMetadataResponse, error) {
	return &oippb.ServerMetadataResponse{Name: "sentiment-edge", Version: Version, Extensions: []string{"model_configuration"}}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, req *oippb.ModelMetadataRequest) (*oippb.ModelMetadataResponse, error) {
	sv, err := g.model(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	type tm = oippb.ModelMetadataResponse_TensorMetadata
	return &oippb.ModelMetadataResponse{
		Name: sv.Name, Versions: []string{sv.Version}, Platform: sv.Predictor.Platform(),
		Inputs: []*tm{{Name: "text", Datatype: "BYTES", Shape: []int64{-1}}},
		Outputs: []*tm{{Name: "label", Datatype: "BYTES", Shape: []int64{-1}}, {Name: "score", Datatype: "FP32", Shape: []int64{-1}},
			{Name: "probabilities", Datatype: "FP32", Shape: []int64{-1, int64(len(sv.Predictor.Labels()))}}},
	}, nil
}

// ModelInfer reads the texts (typed bytes_contents or raw_input_contents),
// runs the inference core and answers in the same form: raw outputs for a
// raw request (as Triton's clients expect), typed ones otherwise.
func (g *grpcService) ModelInfer(ctx context.Context, req *oippb.ModelInferRequest) (*oippb.ModelInferResponse, error) {
	s := g.s
	if _, err := g.model(req.GetModelName(), req.GetModelVersion()); err != nil {
		return nil, err
	}
	if err := inferParameters(req.GetParameters(), ""); err != nil {
		return nil, err
	}
	texts, shape, raw, err := s.grpcTexts(req)
	if err != nil {
		return nil, err
	}
	outputs, err := grpcOutputs(req.GetOutputs())
	if err != nil {
		return nil, err
	}
	call, _ := ctx.Value(grpcCallKey{}).(grpcCall)
	inf := newInference(call.caller)
	defer inf.release()
	inf.Model, inf.Version = req.GetModelName(), req.GetModelVersion()
	inf.Texts = append(inf.Texts, texts...)
	if err := s.Infer(inf); err != nil {
		return nil, err
	}
	resp := &oippb.ModelInferResponse{ModelName: inf.Serving.Name, ModelVersion: inf.Serving.Version, Id: req.GetId()}
	for _, which := range outputs {
		out, data := grpcOutput(which, shape, inf, raw)
		resp.Outputs = append(resp.Outputs, out)
		if raw {
			resp.RawOutputContents = append(resp.RawOutputContents, data)
		}
	}
	return resp, nil
}

// grpcTexts checks the one BYTES input and returns its texts, its shape,
// and whether they came as raw_input_contents.
func (s *Server) grpcTexts(req *oippb.ModelInferRequest) (texts [][]byte, shape []int64, raw bool, err error) {
	inputs := req.GetInputs()
	if len(inputs) != 1 {
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "expected exactly 1 input (BYTES texts), got %d", len(inputs))
	}
	in := inputs[0]
	if in.GetDatatype() != "BYTES" {
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, `inputs[0].datatype must be "BYTES" (texts), got %q`, in.GetDatatype())
	}
	if err := inferParameters(in.GetParameters(), "inputs[0]: "); err != nil {
		return nil, nil, false, err
	}
	want := 1
	for i, d := range in.GetShape() {
		if d < 0 {
			return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "inputs[0].shape[%d] must be a non-negative integer", i)
		}
		if d > int64(s.cfg.MaxBatch) || want*int(d) > s.cfg.MaxBatch {
			return nil, nil, false, httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
		want *= int(d)
	}
	rawIn := req.GetRawInputContents()
	switch {
	case len(rawIn) > 0 && in.GetContents() != nil:
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "inputs[0] has both contents and raw_input_contents: give one")
	case len(rawIn) > 1:
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "raw_input_contents has %d entries for 1 input", len(rawIn))
	case len(rawIn) == 1:
		raw = true
		if texts, err = s.rawTexts(rawIn[0]); err != nil {
			return nil, nil, false, err
		}
	default:
		texts = in.GetContents().GetBytesContents()
		if len(texts) > s.cfg.MaxBatch {
			return nil, nil, false, httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
	}
	if len(texts) != want {
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "inputs[0] has %d elements, its shape says %d", len(texts), want)
	}
	if len(texts) == 0 {
		return nil, nil, false, httperr.New(fasthttp.StatusBadRequest, "inputs[0] holds no text")
	}
	for i, t := range texts {
		if err := s.checkText(t, "inputs[0].data["+strconv.Itoa(i)+"]"); err != nil {
			return nil, nil, false, err
		}
	}
	return texts, in.GetShape(), raw, nil
}

// rawTexts reads BYTES elements: a 4-byte little-endian length, then that
// many bytes, as the binary extension's (binaryTexts) without its tail.
func (s *Server) rawTexts(data []byte) ([][]byte, error) {
	texts, rest, err := s.binaryTexts(data, int64(len(data)), nil)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, httperr.New(fasthttp.StatusBadRequest, "raw_input_contents[0] has %d bytes past its last element", len(rest))
	}
	return texts, nil
}

// inferParameters refuses parameters the edge does not read, as REST
// does; Triton's scheduling hints (priority, timeout) are accepted and
// have no effect.
func inferParameters(params map[string]*oippb.InferParameter, where string) error {
	for k := range params {
		if where == "" && (k == "priority" || k == "timeout") {
			continue
		}
		return httperr.New(fasthttp.StatusBadRequest, "%sunsupported parameter %q", where, k)
	}
	return nil
}

// grpcOutputs is the outputs a call asks for, in its order (all three
// when it names none).
func grpcOutputs(req []*oippb.ModelInferRequest_InferRequestedOutputTensor) ([]int, error) {
	if len(req) == 0 {
		return []int{outLabel, outScore, outProbabilities}, nil
	}
	var out []int
	for i, o := range req {
		if err := inferParameters(o.GetParameters(), "outputs["+strconv.Itoa(i)+"]: "); err != nil {
			return nil, err
		}
		which := -1
		for j, name := range oipOutputs {
			if o.GetName() == name {
				which = j
			}
		}
		if which < 0 {
			return nil, httperr.New(fasthttp.StatusBadRequest, "outputs[%d]: unknown output %q (label, score, probabilities)", i, o.GetName())
		}
		out = append(out, which)
	}
	return out, nil
}

// grpcOutput is one output tensor, and its raw bytes when raw.
func grpcOutput(which int, shape []int64, inf *Inference, raw bool) (*oippb.ModelInferResponse_InferOutputTensor, []byte) {
	out := &oippb.ModelInferResponse_InferOutputTensor{Name: oipOutputs[which], Datatype: "FP32", Shape: shape}
	if which == outProbabilities {
		out.Shape = append(append([]int64(nil), shape...), int64(len(inf.Labels)))
	}
	var data []byte
	contents := &oippb.InferTensorContents{}
	for i, best := range inf.Best {
		row := inf.Row(i)
		switch which {
		case outLabel:
			out.Datatype = "BYTES"
			label := inf.Labels[best]
			if raw {
				data = binary.LittleEndian.AppendUint32(data, uint32(len(label)))
				data = append(data, label...)
			} else {
				contents.BytesContents = append(contents.BytesContents, []byte(label))
			}
		case outScore:
			if raw {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(row[best]))
			} else {
				contents.Fp32Contents = append(contents.Fp32Contents, row[best])
			}
		default:
			for _, p := range row {
				if raw {
					data = binary.LittleEndian.AppendUint32(data, math.Float32bits(p))
				} else {
					contents.Fp32Contents = append(contents.Fp32Contents, p)
				}
			}
		}
	}
	if !raw {
		out.Contents = contents
	}
	return out, data
}

// grpcHealth is grpc.health.v1 for probes: SERVING while the edge is
// ready (a model loaded, not draining), for the server ("") and the
// inference service.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	s *Server
}

func (h *grpcHealth) status(service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	if service != "" && service != oippb.GRPCInferenceService_ServiceDesc.ServiceName {
		return 0, status.Errorf(codes.NotFound, "unknown service %q", service)
	}
	if h.s.Ready() {
		return healthpb.HealthCheckResponse_SERVING, nil
	}
	return healthpb.HealthCheckResponse_NOT_SERVING, nil
}

func (h *grpcHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, err := h.status(req.GetService())
	if err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// Watch sends the status, then every change (checked each second).
func (h *grpcHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st, err := h.status(req.GetService())
		if err != nil {
			st = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		}
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-tick.C:
		}
	}
}
