package main

import (
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sentimentpro/sentiment/geo"
)

// startGRPC forwards gRPC calls on -grpc-listen with the router's TLS;
// nil when off.
func startGRPC(cfg Config, router *geo.Router, log *slog.Logger) (*grpc.Server, error) {
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
	gs := router.NewGRPCServer(opts...)
	go func() {
		if err := gs.Serve(ln); err != nil {
			log.Error("grpc listener stopped", "err", err)
		}
	}()
	log.Info("geo router forwarding grpc", "addr", ln.Addr().String())
	return gs, nil
}
