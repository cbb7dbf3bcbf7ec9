// Command edge runs an edge node: it serves predictions from a model in
// memory, follows its channel in the registry, keeps the last good model on
// disk, and registers itself in its region's Consul datacenter.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/service"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/registry"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Config is everything the edge binary needs, from flags or EDGE_*.
type Config struct {
	Listen          string
	Region          string
	Model           string
	Channel         string
	Registry        string
	RegistryToken   string
	CacheDir        string
	TrustedKeys     string
	RequireSigned   bool
	FallbackDefault bool
	Peers           string // dc=region,… nearest first
	RatePerMinute   float64
	RateBurst       int
	TrustedProxies  string
	MaxBodyBytes    int
	MaxTextBytes    int
	MaxBatch        int
	TLSCert         string
	TLSKey          string
	service.Flags
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.Region, "region", "", "this edge's region, e.g. eu-west (required)")
	fs.StringVar(&c.Model, "model", "sentiment", "model name in the registry, and the /v2 model name")
	fs.StringVar(&c.Channel, "channel", "production", "channel to follow")
	fs.StringVar(&c.Registry, "registry", "", "registry URL, or several replicas separated by commas; empty: serve the embedded default model")
	fs.StringVar(&c.RegistryToken, "registry-token", "", "reader token (prefer EDGE_REGISTRY_TOKEN)")
	fs.StringVar(&c.CacheDir, "cache-dir", "./data/edge-cache", "where verified models are kept for restarts")
	fs.StringVar(&c.TrustedKeys, "trusted-keys", "", "PEM file of keys model signatures must verify against")
	fs.BoolVar(&c.RequireSigned, "require-signatures", false, "refuse unsigned models")
	fs.BoolVar(&c.FallbackDefault, "fallback-default", false, "with -registry: serve the embedded default model until the channel's model arrives")
	fs.StringVar(&c.Peers, "peers", "", "peer datacenter=region pairs, nearest first, for cold starts with no model")
	fs.Float64Var(&c.RatePerMinute, "rate-limit", 100, "requests per minute per client address (0: off)")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "bucket size (default: 10 seconds' worth)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "CIDRs whose X-Forwarded-For is believed")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", edge.DefaultMaxBodyBytes, "largest request body")
	fs.IntVar(&c.MaxTextBytes, "max-text-bytes", edge.DefaultMaxTextBytes, "longest text")
	fs.IntVar(&c.MaxBatch, "max-batch", edge.DefaultMaxBatch, "most texts per batch request")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (with -tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key file")
	c.Flags.Register(fs, "sentiment-edge")
	if err := config.Parse(fs, args, "EDGE"); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate checks the combination of settings.
func (c Config) Validate() error {
	if err := registry.ValidateName("region", c.Region); err != nil {
		return fmt.Errorf("-region: %w", err)
	}
	if err := registry.ValidateName("model", c.Model); err != nil {
		return fmt.Errorf("-model: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if c.RequireSigned && c.TrustedKeys == "" {
		return errors.New("-require-signatures needs -trusted-keys")
	}
	if _, err := peerList(c.Peers); err != nil {
		return err
	}
	_, err := prefixes(c.TrustedProxies)
	return err
}

type peer struct{ dc, region string }

func peerList(s string) ([]peer, error) {
	var out []peer
	for _, item := range config.List(s) {
		dc, region, ok := strings.Cut(item, "=")
		if !ok || dc == "" || region == "" {
			return nil, fmt.Errorf("-peers item %q: want datacenter=region", item)
		}
		out = append(out, peer{dc, region})
	}
	return out, nil
}

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range config.List(s) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

func main() {
	service.Main("edge", parseConfig, func(c Config) string { return c.LogLevel }, run)
}

func run(cfg Config, log *slog.Logger) error {
	log = log.With("region", cfg.Region)
	edge.Version = Version
	proxies, _ := prefixes(cfg.TrustedProxies)
	peers, _ := peerList(cfg.Peers)
	var consul *api.Client
	var err error
	if cfg.ConsulAddr != "" {
		if consul, err = discovery.NewClient(cfg.ConsulAddr, cfg.ConsulToken); err != nil {
			return err
		}
	}
	srvCfg := edge.Config{
		Region: cfg.Region, ModelName: cfg.Model, MaxBodyBytes: cfg.MaxBodyBytes, MaxTextBytes: cfg.MaxTextBytes,
		MaxBatch: cfg.MaxBatch, RatePerMinute: cfg.RatePerMinute, RateBurst: cfg.RateBurst, TrustedProxies: proxies,
		TLS: cfg.TLSCert != "", Logger: log,
	}
	if consul != nil && len(peers) > 0 {
		var order []string
		for _, p := range peers {
			order = append(order, p.region)
		}
		srvCfg.Peers = edge.NewPeers(cfg.Region, order, 2*time.Second, log)
	}
	srv := edge.NewServer(srvCfg)
	defer srv.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
	}
	reg := newRegistration(consul, cfg, ln.Addr().String(), srv, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var syncer *edge.Syncer
	if cfg.Registry != "" {
		keys, err := trustedKeys(cfg.TrustedKeys)
		if err != nil {
			return err
		}
		client := &registry.Client{BaseURL: cfg.Registry, Token: cfg.RegistryToken, HTTP: &http.Client{Timeout: 45 * time.Second}}
		syncer = edge.NewSyncer(srv, edge.SyncConfig{
			Client: client, Model: cfg.Model, Channel: cfg.Channel, Region: cfg.Region, CacheDir: cfg.CacheDir,
			TrustedKeys: keys, RequireSignature: cfg.RequireSigned, Logger: log,
			OnChange: reg.update, OnReject: reg.rejected,
		})
		if ok, err := syncer.LoadCached(); err != nil {
			log.Warn("no usable cached model", "err", err)
		} else if !ok {
			log.Info("no cached model: waiting for the registry")
		}
	}
	if srv.Current() == nil && (cfg.Registry == "" || cfg.FallbackDefault) {
		if err := serveDefault(srv, cfg.Model); err != nil {
			return err
		}
	}

	fsrv := srv.FastHTTPServer()
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- fsrv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- fsrv.Serve(ln)
		}
	}()
	serving := "none"
	if sv := srv.Current(); sv != nil {
		serving = sv.Version + " (" + sv.Source + ")"
	}
	log.Info("edge listening", "addr", ln.Addr().String(), "model", cfg.Model, "channel", cfg.Channel, "serving", serving, "version", Version)

	if err := reg.register(); err != nil {
		log.Warn("cannot register in consul yet; will retry", "err", err)
	}
	var wg sync.WaitGroup
	if syncer != nil {
		wg.Add(1)
		go func() { defer wg.Done(); syncer.Run(ctx) }()
	}
	if consul != nil {
		wg.Add(1)
		go func() { defer wg.Done(); reg.keepRegistered(ctx) }()
		for _, p := range peers {
			w := &discovery.Watcher{Client: consul, Service: cfg.ServiceName, Datacenter: p.dc, Logger: log,
				OnSnapshot: func(s discovery.Snapshot) {
					var addrs []string
					for _, in := range s.Passing() {
						addrs = append(addrs, in.HostPort())
					}
					srvCfg.Peers.Update(p.region, addrs)
				}}
			wg.Add(1)
			go func() { defer wg.Done(); w.Run(ctx) }()
		}
	}

	if err := cfg.AwaitShutdown(log, errc, srv.SetDraining); err != nil {
		return err
	}
	cancel()
	reg.deregister()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	err = fsrv.ShutdownWithContext(sctx)
	wg.Wait()
	return err
}

func trustedKeys(path string) ([]ed25519.PublicKey, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read trusted keys: %w", err)
	}
	return model.ParsePublicKeys(data)
}

// serveDefault serves the embedded default model.
func serveDefault(srv *edge.Server, name string) error {
	m, err := defaultmodel.Load()
	if err != nil {
		return fmt.Errorf("cannot load the embedded default model: %w", err)
	}
	srv.Swap(&edge.Serving{Model: m, Name: name, Version: "embedded-" + strings.TrimPrefix(m.Digest(), "sha256:")[:12],
		Digest: m.Digest(), Source: "embedded", LoadedAt: time.Now()})
	return nil
}

// registration keeps this edge's Consul entry, including the meta that
// feeds rollout status, in step with what it serves.
type registration struct {
	consul          *api.Client
	cfg             Config
	addr            string
	srv             *edge.Server
	log             *slog.Logger
	mu              sync.Mutex
	id              string
	rejectedVersion string
	ok              bool
}

func newRegistration(consul *api.Client, cfg Config, listenAddr string, srv *edge.Server, log *slog.Logger) *registration {
	adv := cfg.Advertise
	if adv == "" {
		adv = listenAddr
	}
	r := &registration{consul: consul, cfg: cfg, addr: adv, srv: srv, log: log}
	_, port, _ := net.SplitHostPort(adv)
	r.id = cfg.ServiceID
	if r.id == "" {
		r.id = fmt.Sprintf("%s-%s-%s", cfg.ServiceName, cfg.Region, port)
	}
	return r
}

func (r *registration) register() error {
	if r.consul == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	host, portStr, err := net.SplitHostPort(r.addr)
	if err != nil {
		return fmt.Errorf("-advertise %q: %w", r.addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	meta := map[string]string{admin.MetaRegion: r.cfg.Region, admin.MetaModel: r.cfg.Model, admin.MetaChannel: r.cfg.Channel, "edge_version": Version}
	if sv := r.srv.Current(); sv != nil {
		meta[admin.MetaVersion], meta[admin.MetaDigest] = sv.Version, sv.Digest
	}
	if r.rejectedVersion != "" {
		meta["model_rejected"] = r.rejectedVersion
	}
	status := ""
	if r.srv.Ready() {
		status = api.HealthPassing
	}
	err = discovery.Register(r.consul.Agent(), discovery.Registration{
		ID: r.id, Name: r.cfg.ServiceName, Address: host, Port: port, Tags: []string{r.cfg.Region}, Meta: meta,
		CheckURL: "http://" + r.addr + "/health/ready", CheckInterval: time.Second, CheckTimeout: time.Second,
		SuccessBeforePassing: 1, FailuresBeforeCritical: 1, DeregisterAfter: 10 * time.Minute, InitialStatus: status,
	})
	r.ok = err == nil
	return err
}

func (r *registration) update(*edge.Serving) {
	if err := r.register(); err != nil {
		r.log.Warn("cannot update consul meta", "err", err)
	}
}

func (r *registration) rejected(version, digest string, _ error) {
	r.mu.Lock()
	r.rejectedVersion = version
	r.mu.Unlock()
	r.update(nil)
}

// keepRegistered re-registers when the agent lost us (agent restart).
func (r *registration) keepRegistered(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, _, err := r.consul.Agent().Service(r.id, nil); err != nil {
			if err := r.register(); err == nil {
				r.log.Info("registered in consul again", "service_id", r.id)
			}
		}
	}
}

func (r *registration) deregister() {
	if r.consul == nil {
		return
	}
	if err := discovery.Deregister(r.consul.Agent(), r.id); err != nil {
		r.log.Warn("cannot deregister", "err", err)
	}
}
