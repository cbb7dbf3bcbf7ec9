package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sentimentpro/sentiment/edge"
)

// startGRPC serves the Open Inference Protocol over gRPC on -grpc-listen
// with the edge's TLS (and mutual TLS); nil when off.
func startGRPC(cfg Config, srv *edge.Server, log *slog.Logger) (*grpc.Server, error) {
	if cfg.GRPCListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on -grpc-listen %s: %w", cfg.GRPCListen, err)
	}
	var opts []grpc.ServerOption
	tlsCfg, err := cfg.TLS.Config(log)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := srv.NewGRPCServer(cfg.TLS.Mutual(), opts...)
	go func() {
		if err := gs.Serve(ln); err != nil {
			log.Error("grpc listener stopped", "err", err)
		}
	}()
	log.Info("grpc listening", "addr", ln.Addr().String())
	return gs, nil
}

// stopGRPC lets the calls in flight finish until ctx is done, then stops.
func stopGRPC(ctx context.Context, gs *grpc.Server) error {
	if gs == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		gs.Stop()
	}
	return nil
}
