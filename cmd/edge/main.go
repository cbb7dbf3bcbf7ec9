// Command edge runs an edge node: it serves predictions from a model in
// memory, follows its channel in the registry, keeps the last good model on
// disk, and registers itself in its region's Consul datacenter.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/deadline"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/service"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Config is everything the edge binary needs, from flags or EDGE_*.
type Config struct {
	Listen          string
	Region          string
	Model           string
	Channel         string
	Models          string // name=channel,…
	MemoryBudgetMiB int
	Registry        string
	ModelFile       string
	RegistryToken   string
	TLSCA           string
	PeerServerName  string
	CacheDir        string
	TrustedKeys     string
	RequireSigned   bool
	FallbackDefault bool
	Peers           string // dc=region,… nearest first
	RatePerMinute   float64
	RateBurst       int
	TrustedProxies  string
	TrustCertProxy  bool
	RolloutClient   float64
	MaxBodyBytes    int
	MaxTextBytes    int
	MaxBatch        int
	AccessLog       float64
	GRPCListen      string
	BlobListen      string
	BlobSlots       int
	PeerWait        time.Duration
	ONNX            onnxFlags
	TLS             tlsfiles.Server
	service.Flags

	// Parsed from the flags above by parseConfig.
	proxies []netip.Prefix
	peers   []peer
	models  []followed // -models, or -model on -channel
}

// followed is one model the edge serves and the channel it follows.
type followed struct{ name, channel string }

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.Region, "region", "", "this edge's region, e.g. eu-west (required)")
	fs.StringVar(&c.Model, "model", "sentiment", "model name in the registry, and the /v2 model name")
	fs.StringVar(&c.Channel, "channel", "production", "channel to follow")
	fs.StringVar(&c.Models, "models", "", "serve several models: name=channel pairs, the first the default of /v1/predict (replaces -model and -channel)")
	fs.IntVar(&c.MemoryBudgetMiB, "memory-budget-mib", 0, "most MiB of model artifacts held at once (every model's version and rollout candidate, and one being loaded); a version past it is refused with the reason (0: no bound)")
	fs.StringVar(&c.Registry, "registry", "", "registry URL, or several replicas separated by commas; empty: serve the embedded default model")
	fs.StringVar(&c.RegistryToken, "registry-token", "", "reader token: from EDGE_REGISTRY_TOKEN only, never the command line")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "CA file the registry's and peers' certificates must chain to (default: the system's); the edge presents -tls-cert to them")
	fs.StringVar(&c.CacheDir, "cache-dir", "./data/edge-cache", "where verified models are kept for restarts")
	fs.StringVar(&c.TrustedKeys, "trusted-keys", "", "PEM file of keys model signatures must verify against; when set, unsigned models are refused")
	fs.BoolVar(&c.RequireSigned, "require-signatures", false, "refuse unsigned models (implied by -trusted-keys)")
	fs.StringVar(&c.ModelFile, "model-file", "", "serve this model: a model file, an ONNX bundle (sentctl pack) or its directory, instead of following a registry")
	fs.BoolVar(&c.FallbackDefault, "fallback-default", false, "with -registry: serve the embedded default model until the channel's model arrives")
	fs.StringVar(&c.Peers, "peers", "", "peer datacenter=region pairs, nearest first, for cold starts with no model")
	fs.Float64Var(&c.RatePerMinute, "rate-limit", 100, "requests per minute per client address (0: off)")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "bucket size (default: a minute's worth)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "CIDRs whose X-Forwarded-For and X-Routing-Key are believed")
	fs.BoolVar(&c.TrustCertProxy, "trust-client-certs", false, "with -tls-client-ca: believe the X-Forwarded-For and X-Routing-Key of any client whose certificate verified (the geo routers, peer edges), whatever its address")
	fs.Float64Var(&c.RolloutClient, "rollout-client-rate", 10, "during a rollout, how many of one client's requests a minute count in a version's figures (the rest are answered, not counted; 0: all count)")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", edge.DefaultMaxBodyBytes, "largest request body")
	fs.IntVar(&c.MaxTextBytes, "max-text-bytes", edge.DefaultMaxTextBytes, "longest text")
	fs.IntVar(&c.MaxBatch, "max-batch", edge.DefaultMaxBatch, "most texts per batch request")
	fs.Float64Var(&c.AccessLog, "access-log-sample", 0.001, "share of requests given an access log line, 0 to 1 (ids, status, timing; never a text)")
	fs.StringVar(&c.GRPCListen, "grpc-listen", "", "serve the Open Inference Protocol over gRPC (and grpc.health.v1) on this address, with the same TLS; empty: off")
	fs.StringVar(&c.BlobListen, "blob-listen", "", "serve the verified artifacts this edge holds to the edges of its region on this address (registered in Consul as <service>-blobs); empty: off")
	fs.IntVar(&c.BlobSlots, "blob-slots", 4, "artifact uploads to peers at once; past it a peer is told to ask another")
	fs.DurationVar(&c.PeerWait, "peer-wait", 2*time.Minute, "with -consul: how long a new artifact is awaited from the region's peers (its seeder fetches it from the registry) before this edge fetches it from the registry itself")
	c.ONNX.register(fs)
	c.TLS.Register(fs)
	fs.StringVar(&c.PeerServerName, "peer-server-name", "", "name every peer's certificate must carry (default: the address dialled, from Consul)")
	c.Flags.Register(fs, "sentiment-edge")
	if err := config.Parse(fs, args, "EDGE"); err != nil {
		return Config{}, err
	}
	var err error
	if c.peers, err = peerList(c.Peers); err != nil {
		return Config{}, err
	}
	if c.proxies, err = clientip.ParsePrefixes(c.TrustedProxies); err != nil {
		return Config{}, fmt.Errorf("-trusted-proxies: %w", err)
	}
	if c.models, err = modelList(c.Models, c.Model, c.Channel); err != nil {
		return Config{}, err
	}
	c.Model, c.Channel = c.models[0].name, c.models[0].channel
	return c, c.Validate()
}

// Validate checks the combination of settings.
func (c Config) Validate() error {
	if err := wire.ValidateName("region", c.Region); err != nil {
		return fmt.Errorf("-region: %w", err)
	}
	if err := wire.ValidateName("model", c.Model); err != nil {
		return fmt.Errorf("-model: %w", err)
	}
	if len(c.models) > 1 && c.Registry == "" {
		return errors.New("-models: several models need -registry (-model-file and the embedded model serve one)")
	}
	if c.MemoryBudgetMiB < 0 {
		return errors.New("-memory-budget-mib must be 0 or more")
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if c.AccessLog < 0 || c.AccessLog > 1 {
		return errors.New("-access-log-sample must be between 0 and 1")
	}
	if c.ModelFile != "" && c.Registry != "" {
		return errors.New("-model-file and -registry: give one")
	}
	if c.RequireSigned && c.TrustedKeys == "" {
		return errors.New("-require-signatures needs -trusted-keys")
	}
	if c.TrustCertProxy && !c.TLS.Mutual() {
		return errors.New("-trust-client-certs needs mutual TLS (-tls-cert, -tls-key and -tls-client-ca)")
	}
	if c.RolloutClient < 0 {
		return errors.New("-rollout-client-rate must be 0 or more")
	}
	if c.BlobSlots < 1 {
		return errors.New("-blob-slots must be 1 or more")
	}
	if c.PeerWait < 0 {
		return errors.New("-peer-wait must be 0 or more")
	}
	return c.ONNX.validate()
}

// modelList parses -models, or makes the one model of -model and
// -channel.
func modelList(s, model, channel string) ([]followed, error) {
	if s == "" {
		return []followed{{model, channel}}, nil
	}
	var out []followed
	seen := map[string]bool{}
	for _, item := range config.List(s) {
		name, ch, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("-models item %q: want name=channel", item)
		}
		if err := wire.ValidateName("model", name); err != nil {
			return nil, fmt.Errorf("-models: %w", err)
		}
		if err := wire.ValidateName("channel", ch); err != nil {
			return nil, fmt.Errorf("-models: %w", err)
		}
		if seen[name] {
			return nil, fmt.Errorf("-models: model %q is listed twice", name)
		}
		seen[name] = true
		out = append(out, followed{name, ch})
	}
	if len(out) == 0 {
		return nil, errors.New("-models: no model")
	}
	return out, nil
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

func main() {
	service.Main("edge", parseConfig, func(c Config) string { return c.LogLevel }, run)
}

func run(cfg Config, log *slog.Logger) error {
	log = log.With("region", cfg.Region)
	edge.Version = Version
	if err := cfg.ServeProfiler(log); err != nil {
		return err
	}
	proxies, peers := cfg.proxies, cfg.peers
	var consul *api.Client
	var err error
	if cfg.ConsulAddr != "" {
		if consul, err = discovery.NewClient(cfg.ConsulAddr, cfg.ConsulToken); err != nil {
			return err
		}
	}
	srvCfg := edge.Config{
		Region: cfg.Region, Models: cfg.modelNames(), MemoryBudget: int64(cfg.MemoryBudgetMiB) << 20, MaxBodyBytes: cfg.MaxBodyBytes, MaxTextBytes: cfg.MaxTextBytes,
		MaxBatch: cfg.MaxBatch, RatePerMinute: cfg.RatePerMinute, RateBurst: cfg.RateBurst, TrustedProxies: proxies,
		TrustClientCerts: cfg.TrustCertProxy, RolloutClientRate: cfg.RolloutClient, TLS: cfg.TLS.Enabled(), AccessLogSample: cfg.AccessLog, Logger: log,
	}
	if consul != nil && len(peers) > 0 {
		var order []string
		for _, p := range peers {
			order = append(order, p.region)
		}
		// Edges are alike: peers serve the scheme this edge serves.
		var peerTLS *tls.Config
		if cfg.TLS.Enabled() {
			if peerTLS, err = clientTLS(cfg, log); err != nil {
				return err
			}
			peerTLS.ServerName = cfg.PeerServerName
		}
		srvCfg.Peers = edge.NewPeers(cfg.Region, order, 2*time.Second, peerTLS, log)
	}
	srv := edge.NewServer(srvCfg)
	defer srv.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
	}
	reg, err := newRegistrar(consul, cfg, ln.Addr().String(), srv, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var blobs *blobServer
	blobSelf := ""
	if cfg.BlobListen != "" && cfg.Registry != "" {
		if blobs, err = startBlobServer(cfg, consul, reg, log); err != nil {
			return err
		}
		if blobs.reg != nil {
			blobSelf = blobs.reg.ID()
		}
	}
	var syncers []*edge.Syncer
	if cfg.Registry != "" {
		keys, err := trustedKeys(cfg.TrustedKeys)
		if err != nil {
			return err
		}
		tlsCfg, err := clientTLS(cfg, log)
		if err != nil {
			return err
		}
		client := &regclient.Client{BaseURL: cfg.Registry, Token: cfg.RegistryToken, HTTP: tlsfiles.HTTPClient(tlsCfg, 45*time.Second)}
		fetcher, err := newFetcher(cfg, consul, client, blobSelf, log)
		if err != nil {
			return err
		}
		onnx := cfg.ONNX.open(log)
		for i, m := range cfg.models {
			sy := edge.NewSyncer(srv, edge.SyncConfig{
				Client: client, Model: m.name, Channel: m.channel, Region: cfg.Region, CacheDir: cfg.CacheDir,
				TrustedKeys: keys, RequireSignature: cfg.RequireSigned, Logger: log,
				OnChange: reportServing(reg, i, m, log), OnReject: reportRejected(reg, i, m, log), ONNX: onnx,
				Fetcher: fetcher, OnArtifacts: blobs.advertise(log),
			})
			if ok, err := sy.LoadCached(); err != nil {
				log.Warn("no usable cached model", "model", m.name, "err", err)
			} else if !ok {
				log.Info("no cached model: waiting for the registry", "model", m.name)
			}
			syncers = append(syncers, sy)
		}
	}
	if cfg.ModelFile != "" {
		if err := serveFile(srv, cfg, log); err != nil {
			return err
		}
	}
	if srv.Current() == nil && (cfg.Registry == "" || cfg.FallbackDefault) {
		if err := serveDefault(srv, cfg.Model); err != nil {
			return err
		}
	}

	fsrv := srv.FastHTTPServer()
	fsrv.Handler = frontdoor.RequireClientCert(cfg.TLS, fsrv.Handler)
	frontdoor.ExportOpenConnections("edge_open_connections", fsrv)
	// Under TLS, so the handshake's deadlines are kept the same way.
	ln = deadline.NewListener(ln, deadline.ServerTick)
	if ln, err = cfg.TLS.Listener(ln, log); err != nil {
		return err
	}
	// The gRPC listener is bound before the HTTP one serves: once the
	// edge answers its readiness probe, both take calls.
	gs, err := startGRPC(cfg, srv, reg, log)
	if err != nil {
		return err
	}
	failed := service.Go(func() error { return fsrv.Serve(ln) })
	serving := "none"
	if sv := srv.Current(); sv != nil {
		serving = sv.Version + " (" + sv.Source + ")"
	}
	log.Info("edge listening", "addr", ln.Addr().String(), "models", cfg.Models, "model", cfg.Model, "channel", cfg.Channel,
		"serving", serving, "version", Version)

	var wg sync.WaitGroup
	for _, sy := range syncers {
		wg.Add(1)
		go func() { defer wg.Done(); sy.Run(ctx) }()
	}
	shutdown := func(ctx context.Context) error {
		return errors.Join(fsrv.ShutdownWithContext(ctx), blobs.shutdown(ctx), service.StopGRPC(ctx, gs))
	}
	tail := service.Serving{Failed: failed, SetDraining: srv.SetDraining, StopWork: cancel, Shutdown: shutdown, Wait: wg.Wait}
	if reg != nil {
		// What serves already (the embedded model, a model file, a cached
		// version), in the meta before the first registration is applied.
		for i, m := range cfg.models {
			if sv := srv.Slot(m.name).Current(); sv != nil {
				reportServing(reg, i, m, log)(sv)
			}
		}
		if err := reg.Update(nil); err != nil {
			log.Warn("cannot register in consul yet; will retry", "err", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); reg.Run(ctx, 5*time.Second) }()
		tail.Deregister = reg.Deregister
		if blobs != nil && blobs.reg != nil {
			wg.Add(1)
			go func() { defer wg.Done(); blobs.reg.Run(ctx, 5*time.Second) }()
			tail.Deregister = func() error { return errors.Join(blobs.reg.Deregister(), reg.Deregister()) }
		}
		if srvCfg.Peers != nil {
			discovery.FollowRegions(ctx, &wg, consul, cfg.ServiceName, peerDatacenters(peers), srvCfg.Peers.Update, log)
		}
	}
	return cfg.Drain(log, tail)
}

// modelNames are the names of the models served, the default first.
func (c Config) modelNames() []string {
	names := make([]string, len(c.models))
	for i, m := range c.models {
		names[i] = m.name
	}
	return names
}

// peerDatacenters maps each peer region to its Consul datacenter.
func peerDatacenters(peers []peer) map[string]string {
	dcs := map[string]string{}
	for _, p := range peers {
		dcs[p.region] = p.dc
	}
	return dcs
}

// clientTLS is the TLS configuration of the edge's own requests (to the
// registry and to peers): servers verified against -tls-ca, and the edge's
// certificate presented where mutual TLS asks for one.
func clientTLS(cfg Config, log *slog.Logger) (*tls.Config, error) {
	c, err := tlsfiles.ClientConfig(cfg.TLSCA, cfg.TLS.Cert, cfg.TLS.Key, log)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	return c, nil
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
	srv.Swap(&edge.Serving{Predictor: m, Name: name, Version: "embedded-" + strings.TrimPrefix(m.Digest(), "sha256:")[:12],
		Digest: m.Digest(), Source: "embedded", LoadedAt: time.Now(), Bytes: int64(len(defaultmodel.Artifact()))})
	return nil
}

// serveFile serves the model at -model-file: no registry, no signature.
func serveFile(srv *edge.Server, cfg Config, log *slog.Logger) error {
	data, err := bundle.ReadPath(cfg.ModelFile, edge.MaxArtifactBytes)
	if err != nil {
		return err
	}
	digest := model.Digest(data)
	p, err := cfg.ONNX.open(log).Predictor(data, digest)
	if err != nil {
		return fmt.Errorf("cannot serve %s: %w", cfg.ModelFile, err)
	}
	srv.Swap(&edge.Serving{Predictor: p, Name: cfg.Model, Version: "file-" + strings.TrimPrefix(digest, "sha256:")[:12],
		Digest: digest, Source: "file", LoadedAt: time.Now(), Bytes: int64(len(data))})
	log.Info("serving a model file", "path", cfg.ModelFile, "digest", digest, "platform", p.Platform())
	return nil
}

// newRegistrar describes this edge to Consul: its address, health check
// and the meta that feeds rollout status. Nil without -consul.
func newRegistrar(consul *api.Client, cfg Config, listenAddr string, srv *edge.Server, log *slog.Logger) (*discovery.Registrar, error) {
	if consul == nil {
		return nil, nil
	}
	r, err := cfg.Registration(listenAddr, cfg.Region, cfg.TLS.Enabled())
	if err != nil {
		return nil, err
	}
	r.Tags = []string{cfg.Region}
	r.Meta = map[string]string{discovery.MetaRegion: cfg.Region, discovery.MetaBuild: Version}
	for i, m := range cfg.models {
		discovery.SetServed(r.Meta, i, discovery.ServedModel{Model: m.name, Channel: m.channel})
	}
	r.FailuresBeforeCritical = 1
	return discovery.NewRegistrar(consul.Agent(), r, srv.Ready, log), nil
}

// reportServing puts model i's serving version into the edge's Consul
// meta. Nil without Consul.
func reportServing(reg *discovery.Registrar, i int, m followed, log *slog.Logger) func(*edge.Serving) {
	if reg == nil {
		return nil
	}
	return func(sv *edge.Serving) {
		updateServed(reg, i, m, log, func(s *discovery.ServedModel) { s.Version, s.Digest = sv.Version, sv.Digest })
	}
}

// reportRejected puts a version of model i the edge refused into its
// Consul meta. Nil without Consul.
func reportRejected(reg *discovery.Registrar, i int, m followed, log *slog.Logger) func(version string, err error) {
	if reg == nil {
		return nil
	}
	return func(version string, _ error) {
		updateServed(reg, i, m, log, func(s *discovery.ServedModel) { s.Rejected = version })
	}
}

func updateServed(reg *discovery.Registrar, i int, m followed, log *slog.Logger, change func(*discovery.ServedModel)) {
	err := reg.Update(func(r *discovery.Registration) {
		served := discovery.ServedModel{Model: m.name, Channel: m.channel}
		for _, s := range discovery.Served(r.Meta) {
			if s.Model == m.name {
				served = s
			}
		}
		change(&served)
		discovery.SetServed(r.Meta, i, served)
	})
	if err != nil {
		log.Warn("cannot update consul meta; will retry", "model", m.name, "err", err)
	}
}
