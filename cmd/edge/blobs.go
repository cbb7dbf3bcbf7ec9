package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/distrib"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/registry/regclient"
)

// blobServer is the edge's blob server: the verified artifacts it holds,
// served to the peers of its region, and its own Consul service.
type blobServer struct {
	http *http.Server
	reg  *discovery.Registrar
}

// blobServiceID is the blob server's Consul ID: the edge's, suffixed.
func blobServiceID(edgeID string) string { return edgeID + distrib.ServiceSuffix }

// newFetcher downloads artifacts from the region's peers (found in Consul)
// before the registry; without Consul, from the registry only.
func newFetcher(cfg Config, consul *api.Client, client *regclient.Client, self string, log *slog.Logger) (*distrib.Fetcher, error) {
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: client}, PeerWait: cfg.PeerWait}
	if consul == nil {
		return f, nil
	}
	tlsCfg, err := clientTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	tlsCfg.ServerName = cfg.PeerServerName
	// No overall timeout: a large artifact takes what it takes; the
	// fetcher drops a peer that stalls.
	peers := tlsfiles.HTTPClient(tlsCfg, 0)
	f.Finder = &distrib.Consul{Client: consul, Service: cfg.ServiceName + distrib.ServiceSuffix, Region: cfg.Region,
		Self: self, Scheme: cfg.TLS.Scheme(), HTTP: peers}
	return f, nil
}

// startBlobServer serves path's artifacts on -blob-listen (TLS and client
// certificates as the edge's own listener) and registers it in Consul as
// edgeReg's sibling.
func startBlobServer(cfg Config, consul *api.Client, edgeReg *discovery.Registrar, log *slog.Logger) (*blobServer, error) {
	ln, err := net.Listen("tcp", cfg.BlobListen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on -blob-listen %s: %w", cfg.BlobListen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if ln, err = cfg.TLS.Listener(ln, log); err != nil {
		return nil, err
	}
	path := func(digest string) string { return edge.BlobPath(cfg.CacheDir, digest) }
	srv := &distrib.Server{Path: path, Slots: cfg.BlobSlots}
	// The write timeout bounds how long a peer that stops reading holds an
	// upload slot: 10 minutes is 250 MiB at under half a megabyte a second.
	b := &blobServer{http: &http.Server{Handler: cfg.TLS.RequireClientCert(srv.Handler()), ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Minute, IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go func() {
		if err := b.http.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("blob server stopped; peers fetch elsewhere", "err", err)
		}
	}()
	log.Info("blob server listening", "addr", ln.Addr().String(), "slots", cfg.BlobSlots)
	if edgeReg == nil {
		return b, nil
	}
	r, err := cfg.Registration(cfg.Listen, cfg.Region, cfg.TLS.Enabled())
	if err != nil {
		return nil, err
	}
	r.ID, r.Name, r.Port = blobServiceID(edgeReg.ID()), cfg.ServiceName+distrib.ServiceSuffix, port
	host := net.JoinHostPort(r.Address, fmt.Sprint(port))
	r.CheckURL = cfg.TLS.Scheme() + "://" + host + "/health/live"
	r.Tags = []string{cfg.Region}
	r.Meta = map[string]string{discovery.MetaRegion: cfg.Region, discovery.MetaModel: cfg.Model}
	b.reg = discovery.NewRegistrar(consul.Agent(), r, func() bool { return true }, log)
	if err := b.reg.Update(nil); err != nil {
		log.Warn("cannot register the blob server in consul yet; will retry", "err", err)
	}
	return b, nil
}

// advertise puts the artifacts the blob server holds into its Consul meta.
func (b *blobServer) advertise(log *slog.Logger) func([]string) {
	return func(digests []string) {
		if b == nil || b.reg == nil {
			return
		}
		hexes := make([]string, len(digests))
		for i, d := range digests {
			hexes[i] = strings.TrimPrefix(d, "sha256:")
		}
		if err := b.reg.Update(func(r *discovery.Registration) { r.Meta[discovery.MetaArtifacts] = strings.Join(hexes, " ") }); err != nil {
			log.Warn("cannot update the blob server's consul meta; will retry", "err", err)
		}
	}
}

// shutdown stops the blob server after the edge's listener.
func (b *blobServer) shutdown(ctx context.Context) error {
	if b == nil {
		return nil
	}
	return b.http.Shutdown(ctx)
}
