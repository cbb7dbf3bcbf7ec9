package main

import (
	"log/slog"

	"google.golang.org/grpc"

	"github.com/sentimentpro/sentiment/geo"
	"github.com/sentimentpro/sentiment/internal/service"
)

// startGRPC forwards gRPC calls on -grpc-listen with the router's TLS;
// nil when off.
func startGRPC(cfg Config, router *geo.Router, log *slog.Logger) (*grpc.Server, error) {
	if cfg.GRPCListen == "" {
		return nil, nil
	}
	gs, _, err := service.ServeGRPC(cfg.GRPCListen, cfg.TLS, router.NewGRPCServer, log)
	return gs, err
}
