// Command registry runs the model registry and admin API: stateless, all
// state in S3-compatible storage (or a local directory), registered in
// Consul with a health check that fails when storage is unreachable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/console"
	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/httpbody"
	"github.com/sentimentpro/sentiment/internal/service"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/rollout"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/dir"
	"github.com/sentimentpro/sentiment/store/s3"
	"github.com/sentimentpro/sentiment/webhook"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Config is everything the registry binary needs, from flags or REGISTRY_*.
type Config struct {
	Listen         string
	Store          string // dir:PATH or s3://BUCKET
	S3             s3.Config
	TokensFile     string
	Tokens         string
	InsecureNoAuth bool
	TrustedKeys    string
	RequireSigned  bool
	MaxArtifact    int64
	MaxBlobStreams int
	BodyIdle       time.Duration // longest wait for more of a request body
	Production     string
	QualityMargin  float64
	Datacenters    string
	TLS            tlsfiles.Server
	Rollouts       RolloutConfig
	Geo, GeoToken  string // the geo router's address and internal token, for the console's regions page
	ConsoleKey     string // seals the console's session cookies; the same on every replica
	WebhookRetries string // the retry schedule of webhook deliveries
	WebhookDeny    string // CIDRs webhook deliveries may not reach
	WebhookTick    time.Duration
	service.Flags
}

// RolloutConfig is how the registry drives staged rollouts and reads the
// edges' figures.
type RolloutConfig struct {
	Edges          string        // region=URL list; default: Consul
	Tick, Lease    time.Duration // how often the controller looks; how long a driving replica's lease lasts
	EdgeCA         string        // CA the edges' certificates chain to: read them over https
	EdgeServerName string        // the name in every edge's certificate
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8081", "HTTP listen address")
	fs.StringVar(&c.Store, "store", "dir:./data/registry", "storage: dir:PATH or s3://BUCKET")
	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", "", "S3 endpoint host:port (with -store s3://…)")
	fs.StringVar(&c.S3.AccessKey, "s3-access-key", "", "S3 access key")
	fs.StringVar(&c.S3.SecretKey, "s3-secret-key", "", "S3 secret key: from REGISTRY_S3_SECRET_KEY only, never the command line")
	fs.StringVar(&c.S3.Region, "s3-region", "", "S3 region")
	fs.BoolVar(&c.S3.Secure, "s3-tls", false, "use HTTPS to S3")
	fs.StringVar(&c.TokensFile, "tokens-file", "", "file of role:name:token lines")
	fs.StringVar(&c.Tokens, "tokens", "", "role:name:token entries, comma-separated: from REGISTRY_TOKENS only (or -tokens-file), never the command line")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "serve without authentication (local experiments only)")
	fs.StringVar(&c.TrustedKeys, "trusted-keys", "", "PEM file of publisher public keys that may sign versions; when set, unsigned versions are refused")
	fs.BoolVar(&c.RequireSigned, "require-signatures", false, "refuse versions without a valid signature (implied by -trusted-keys)")
	fs.Int64Var(&c.MaxArtifact, "max-artifact-bytes", 512<<20, "largest accepted upload")
	fs.IntVar(&c.MaxBlobStreams, "max-blob-streams", 64, "artifact downloads streamed at once; past it the answer is 503 with Retry-After")
	fs.DurationVar(&c.BodyIdle, "body-idle-timeout", 30*time.Second, "longest wait for more of a request body (an upload may take longer in all, as long as bytes keep coming)")
	fs.StringVar(&c.Production, "production-channels", "production", "channels only admins may move, behind the quality gate")
	fs.Float64Var(&c.QualityMargin, "quality-margin", 0.01, "accuracy a production candidate may lose against the version it replaces")
	fs.StringVar(&c.Datacenters, "datacenters", "", "datacenters to ask for rollout status (default: all)")
	fs.StringVar(&c.Rollouts.Edges, "edges", "", "edges, as region=URL,…, when there is no Consul: rollouts read their metrics, status their /health/ready (default: found through Consul)")
	fs.DurationVar(&c.Rollouts.Tick, "rollout-tick", time.Second, "how often the rollout controller looks at running rollouts")
	fs.DurationVar(&c.Rollouts.Lease, "rollout-lease", 10*time.Second, "how long the replica driving a rollout holds it without renewing")
	fs.StringVar(&c.Rollouts.EdgeCA, "edge-ca", "", "CA file edges' certificates chain to: their metrics are read over https, presenting -tls-cert")
	fs.StringVar(&c.Rollouts.EdgeServerName, "edge-server-name", "", "name every edge's certificate carries (default: the address dialled)")
	fs.StringVar(&c.Geo, "geo", "", "the geo router's URL, for the console's regions page (its CA: -edge-ca)")
	fs.StringVar(&c.GeoToken, "geo-token", "", "the geo router's internal token: from REGISTRY_GEO_TOKEN only, never the command line")
	fs.StringVar(&c.ConsoleKey, "console-key", "", "secret that seals the console's session cookies, the same on every replica behind one address (default: one per process): from REGISTRY_CONSOLE_KEY only, never the command line")
	fs.StringVar(&c.WebhookRetries, "webhook-retry-schedule", "5s,5m,30m,2h,5h,10h,10h", "waits before each retry of a failed webhook delivery")
	fs.DurationVar(&c.WebhookTick, "webhook-tick", time.Second, "how often new events are dispatched and due deliveries sent")
	fs.StringVar(&c.WebhookDeny, "webhook-deny", webhook.DefaultDeny, "CIDRs no webhook may name or reach, checked after DNS (default: cloud metadata services and non-host addresses)")
	c.TLS.Register(fs)
	c.Flags.Register(fs, "sentiment-registry")
	if err := config.Parse(fs, args, "REGISTRY"); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate checks the combination of settings.
func (c Config) Validate() error {
	switch {
	case !strings.HasPrefix(c.Store, "dir:") && !strings.HasPrefix(c.Store, "s3://"):
		return fmt.Errorf("-store %q: want dir:PATH or s3://BUCKET", c.Store)
	case strings.HasPrefix(c.Store, "s3://") && c.S3.Endpoint == "":
		return errors.New("-store s3://… needs -s3-endpoint")
	case c.Tokens == "" && c.TokensFile == "" && !c.InsecureNoAuth:
		return errors.New("no tokens: set -tokens-file or REGISTRY_TOKENS (or -insecure-no-auth for a local experiment)")
	case c.RequireSigned && c.TrustedKeys == "":
		return errors.New("-require-signatures needs -trusted-keys")
	case c.ConsoleKey != "" && len(c.ConsoleKey) < 32:
		return errors.New("REGISTRY_CONSOLE_KEY must be at least 32 characters (openssl rand -hex 32 makes one)")
	case c.MaxArtifact <= 0:
		return errors.New("-max-artifact-bytes must be positive")
	case c.MaxBlobStreams < 1:
		return errors.New("-max-blob-streams must be 1 or more")
	case c.BodyIdle <= 0:
		return errors.New("-body-idle-timeout must be positive")
	case c.Rollouts.Tick <= 0 || c.Rollouts.Lease < 2*c.Rollouts.Tick:
		return errors.New("-rollout-tick must be positive and -rollout-lease at least twice as long")
	}
	if _, err := webhook.ParseSchedule(c.WebhookRetries); err != nil {
		return fmt.Errorf("-webhook-retry-schedule: %w", err)
	}
	if c.WebhookTick <= 0 {
		return errors.New("-webhook-tick must be positive")
	}
	if _, err := clientip.ParsePrefixes(c.WebhookDeny); err != nil {
		return fmt.Errorf("-webhook-deny: %w", err)
	}
	if _, err := rollout.ParseStaticEdges(c.Rollouts.Edges); err != nil {
		return fmt.Errorf("-edges: %w", err)
	}
	return c.TLS.Validate()
}

func main() {
	service.Main("registry", parseConfig, func(c Config) string { return c.LogLevel }, run)
}

func openStore(c Config) (store.Store, error) {
	if path, ok := strings.CutPrefix(c.Store, "dir:"); ok {
		return dir.New(path)
	}
	s3cfg := c.S3
	s3cfg.Bucket = strings.TrimPrefix(c.Store, "s3://")
	return s3.New(s3cfg)
}

func run(cfg Config, log *slog.Logger) error {
	if err := cfg.ServeProfiler(log); err != nil {
		return err
	}
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	regCfg := registry.Config{Store: st, RequireSignatures: cfg.RequireSigned, MaxArtifactBytes: cfg.MaxArtifact,
		MaxBlobStreams: cfg.MaxBlobStreams, Logger: log}
	if cfg.TrustedKeys != "" {
		data, err := os.ReadFile(cfg.TrustedKeys)
		if err != nil {
			return fmt.Errorf("cannot read trusted keys: %w", err)
		}
		if regCfg.TrustedKeys, err = model.ParsePublicKeys(data); err != nil {
			return fmt.Errorf("cannot read trusted keys %q: %w", cfg.TrustedKeys, err)
		}
	}
	reg, err := registry.New(regCfg)
	if err != nil {
		return err
	}
	var tokens *registry.Tokens
	if !cfg.InsecureNoAuth {
		text := cfg.Tokens
		if cfg.TokensFile != "" {
			data, err := os.ReadFile(cfg.TokensFile)
			if err != nil {
				return fmt.Errorf("cannot read tokens: %w", err)
			}
			text += "\n" + string(data)
		}
		if tokens, err = registry.ParseTokens(text); err != nil {
			return err
		}
	} else {
		log.Warn("authentication is OFF (-insecure-no-auth): anyone who reaches this port is an admin")
	}
	var consul *api.Client
	if cfg.ConsulAddr != "" {
		if consul, err = discovery.NewClient(cfg.ConsulAddr, cfg.ConsulToken); err != nil {
			return err
		}
	}
	edgeClient, scheme, err := cfg.edgeClient(log)
	if err != nil {
		return err
	}
	static, _ := rollout.ParseStaticEdges(cfg.Rollouts.Edges) // checked by Validate
	rollouts, err := newRollouts(cfg, reg, st, consul, static, edgeClient, scheme, log)
	if err != nil {
		return err
	}
	schedule, _ := webhook.ParseSchedule(cfg.WebhookRetries) // checked by Validate
	deny, _ := clientip.ParsePrefixes(cfg.WebhookDeny)       // checked by Validate
	hooks, err := webhook.New(webhook.Config{Registry: reg, Store: st, ID: replicaID(cfg), Schedule: schedule, Tick: cfg.WebhookTick,
		Deny: deny, Logger: log})
	if err != nil {
		return err
	}
	a := registry.NewAPI(reg, tokens, log)
	admin.Mount(a, admin.Config{
		ProductionChannels: config.List(cfg.Production), QualityMargin: cfg.QualityMargin,
		Consul: consul, Datacenters: config.List(cfg.Datacenters), Rollouts: rollouts, Webhooks: hooks,
		Edges: static, EdgeClient: edgeClient,
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
	}
	// The console at /ui/ reads and acts through the same API, in process.
	// People log in to it with a token, from browsers that hold no client
	// certificate: it is the one path mutual TLS leaves to its own login.
	root := http.NewServeMux()
	root.Handle("/ui/", console.New(console.Config{API: a, Logger: log, Geo: cfg.Geo, GeoToken: cfg.GeoToken, GeoClient: edgeClient,
		SessionKey: []byte(cfg.ConsoleKey)}))
	root.Handle("/", cfg.TLS.RequireClientCert(a))
	srv := &http.Server{Handler: httpbody.Guard(root, cfg.BodyIdle), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if ln, err = cfg.TLS.Listener(ln, log); err != nil {
		return err
	}
	failed := service.Go(func() error { return srv.Serve(ln) })
	log.Info("registry listening", "addr", ln.Addr().String(), "store", cfg.Store, "version", Version)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rollouts.Run(ctx)
	go hooks.Run(ctx)
	var registrar *discovery.Registrar
	if consul != nil {
		if registrar, err = newRegistrar(consul, cfg, ln.Addr().String(), log); err != nil {
			srv.Close()
			return err
		}
		if err := registrar.Update(nil); err != nil {
			// Consul may start after the registry: Run registers it then.
			log.Warn("cannot register in consul yet; will retry", "err", err)
		} else {
			log.Info("registered in consul", "service_id", registrar.ID())
		}
		go registrar.Run(ctx, 5*time.Second)
	}

	tail := service.Serving{Failed: failed, SetDraining: a.SetDraining, StopWork: cancel, Shutdown: srv.Shutdown}
	if registrar != nil {
		// Deregister stops the registrar too: nothing is applied after it.
		tail.Deregister = registrar.Deregister
	}
	return cfg.Drain(log, tail)
}

// newRegistrar describes this replica to Consul: its address and a health
// check that fails when storage is unreachable.
func newRegistrar(consul *api.Client, cfg Config, listenAddr string, log *slog.Logger) (*discovery.Registrar, error) {
	r, err := cfg.Registration(listenAddr, "", cfg.TLS.Enabled())
	if err != nil {
		return nil, err
	}
	r.Meta = map[string]string{discovery.MetaBuild: Version}
	r.FailuresBeforeCritical = 2
	return discovery.NewRegistrar(consul.Agent(), r, nil, log), nil
}

// edgeClient reads edges' metrics and health: over https, presenting
// this registry's certificate, with -edge-ca.
func (c Config) edgeClient(log *slog.Logger) (*http.Client, string, error) {
	if c.Rollouts.EdgeCA == "" {
		return tlsfiles.HTTPClient(nil, 5*time.Second), "http", nil
	}
	tlsCfg, err := tlsfiles.ClientConfig(c.Rollouts.EdgeCA, c.TLS.Cert, c.TLS.Key, log)
	if err != nil {
		return nil, "", fmt.Errorf("edge TLS: %w", err)
	}
	tlsCfg.ServerName = c.Rollouts.EdgeServerName
	return tlsfiles.HTTPClient(tlsCfg, 5*time.Second), "https", nil
}

// newRollouts builds the rollout manager: the edges' figures come from
// -edges, else from Consul; this replica is named by its service ID (or
// host and listen address) in leases.
func newRollouts(cfg Config, reg *registry.Registry, st store.Store, consul *api.Client, static rollout.StaticEdges,
	client *http.Client, scheme string, log *slog.Logger) (*rollout.Manager, error) {
	var edges rollout.Edges
	switch {
	case len(static) > 0:
		edges = static
	case consul != nil:
		edges = rollout.ConsulEdges{Client: consul, Datacenters: config.List(cfg.Datacenters), Service: "sentiment-edge", Scheme: scheme}
	default:
		log.Warn("rollouts have no edges to read figures from (set -consul or -edges): their steps will not pass")
	}
	return rollout.New(rollout.Config{Registry: reg, Store: st, Edges: edges, Client: client,
		ID: replicaID(cfg), Tick: cfg.Rollouts.Tick, Lease: cfg.Rollouts.Lease, Logger: log})
}

// replicaID names this replica in leases and claims: its Consul service
// ID, or its host and listen address.
func replicaID(cfg Config) string {
	if cfg.ServiceID != "" {
		return cfg.ServiceID
	}
	host, _ := os.Hostname()
	return host + "/" + cfg.Listen
}
