package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/edge"
)

// startGRPC serves the Open Inference Protocol over gRPC on -grpc-listen
// with the edge's TLS (and mutual TLS), and puts its port in the edge's
// Consul meta for the geo router; nil when off.
func startGRPC(cfg Config, srv *edge.Server, reg *discovery.Registrar, log *slog.Logger) (*grpc.Server, error) {
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
	if reg != nil {
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		if err := reg.Update(func(r *discovery.Registration) { r.Meta[discovery.MetaGRPCPort] = port }); err != nil {
			log.Warn("cannot register the grpc port in consul yet; will retry", "err", err)
		}
	}
	return gs, nil
}
