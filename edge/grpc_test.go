package edge

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sentimentpro/sentiment/oippb"
)

// startGRPC serves srv's gRPC service on a loopback port and returns a
// connection to it.
func startGRPC(t *testing.T, srv *Server) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := srv.NewGRPCServer(false)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func textRequest(texts ...string) *oippb.ModelInferRequest {
	in := &oippb.ModelInferRequest_InferInputTensor{Name: "text", Datatype: "BYTES", Shape: []int64{int64(len(texts))},
		Contents: &oippb.InferTensorContents{}}
	for _, t := range texts {
		in.Contents.BytesContents = append(in.Contents.BytesContents, []byte(t))
	}
	return &oippb.ModelInferRequest{ModelName: "sentiment", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in}}
}

// TestGRPCHealthFollowsReadiness: grpc.health.v1 says NOT_SERVING without
// a model or while draining, SERVING otherwise; an unknown service is
// NOT_FOUND.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Logger: quiet})
	health := healthpb.NewHealthClient(startGRPC(t, srv))
	ctx := context.Background()
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	if got := check(""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("without a model: %v", got)
	}
	srv.Swap(defaultServing(t))
	if got := check("inference.GRPCInferenceService"); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("with a model: %v", got)
	}
	srv.SetDraining(true)
	if got := check(""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("draining: %v", got)
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v", err)
	}
}

// TestGRPCLimitsAndIDs: the per-client rate limit applies to gRPC infer
// calls as to REST (RESOURCE_EXHAUSTED), too many texts are refused, and
// a caller's request ID comes back in the header metadata.
func TestGRPCLimitsAndIDs(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Logger: quiet, RatePerMinute: 60, RateBurst: 2, MaxBatch: 4})
	srv.Swap(defaultServing(t))
	client := oippb.NewGRPCInferenceServiceClient(startGRPC(t, srv))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "my-request-7")
	var header metadata.MD
	resp, err := client.ModelInfer(ctx, textRequest("a wonderful film"), grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); len(got) != 1 || got[0] != "my-request-7" {
		t.Errorf("request id in the header metadata: %v", got)
	}
	if label := string(resp.Outputs[0].Contents.BytesContents[0]); label != "positive" {
		t.Errorf("label %q", label)
	}
	_, err = client.ModelInfer(ctx, textRequest("a", "b", "c", "d", "e"))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("5 texts past a batch of 4: %v", err)
	}
	for range 3 {
		_, err = client.ModelInfer(ctx, textRequest("fine"))
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "rate limit exceeded: 60 requests per minute" {
		t.Errorf("past the rate limit: %v", err)
	}
	if _, err := client.ServerLive(ctx, &oippb.ServerLiveRequest{}); err != nil {
		t.Errorf("health calls are not rate limited: %v", err)
	}
}
