package main

import (
	"log/slog"
	"strconv"

	"google.golang.org/grpc"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/service"
)

// startGRPC serves the Open Inference Protocol over gRPC on -grpc-listen
// with the edge's TLS (and mutual TLS), and puts its port in the edge's
// Consul meta for the geo router; nil when off.
func startGRPC(cfg Config, srv *edge.Server, reg *discovery.Registrar, log *slog.Logger) (*grpc.Server, error) {
	if cfg.GRPCListen == "" {
		return nil, nil
	}
	gs, addr, err := service.ServeGRPC(cfg.GRPCListen, cfg.TLS, func(opts ...grpc.ServerOption) *grpc.Server {
		return srv.NewGRPCServer(cfg.TLS.Mutual(), opts...)
	}, log)
	if err != nil {
		return nil, err
	}
	if reg != nil {
		port := strconv.Itoa(addr.Port)
		if err := reg.Update(func(r *discovery.Registration) { r.Meta[discovery.MetaGRPCPort] = port }); err != nil {
			log.Warn("cannot register the grpc port in consul yet; will retry", "err", err)
		}
	}
	return gs, nil
}
