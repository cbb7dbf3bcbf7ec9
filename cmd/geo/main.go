// Command geo runs the geo-routed entry point: one endpoint that sends each
// client to the nearest healthy region and fails over to the next.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/geo"
	"github.com/sentimentpro/sentiment/geo/regions"
	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/deadline"
	"github.com/sentimentpro/sentiment/internal/frontdoor"
	"github.com/sentimentpro/sentiment/internal/service"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Config is everything the geo router needs, from flags or GEO_*.
type Config struct {
	Listen         string
	Regions        string // name=lat,lon;…
	Default        string
	Overrides      string // CC=region,…
	MMDB           string
	HintHeader     string
	Datacenters    string // region=dc,… (Consul discovery)
	EdgeService    string
	Static         string // region=host:port|host:port,… (no Consul)
	GRPCListen     string
	StaticGRPC     string // region=host:port|…: the edges' gRPC listeners (no Consul)
	PerTryTimeout  time.Duration
	MaxAttempts    int
	RetryRatio     float64
	TrustedProxies string
	RatePerMinute  float64
	RateBurst      int
	MaxBodyBytes   int
	MaxConnsPerIP  int
	Concurrency    int
	InternalToken  string
	AccessLog      float64
	TLS            tlsfiles.Server
	EdgeTLS        bool
	EdgeCA         string
	EdgeCert       string
	EdgeKey        string
	EdgeServerName string
	service.Flags

	// Parsed from the flags above by parseConfig.
	regions     []regions.Region
	overrides   map[string]string
	static      map[string]string // region -> addr|addr
	staticGRPC  map[string]string // region -> addr|addr
	datacenters map[string]string // region -> Consul datacenter
	proxies     []netip.Prefix
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("geo", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.Regions, "regions", regions.Default, "regions and their locations: name=lat,lon;…")
	fs.StringVar(&c.Default, "default-region", "us-east", "region for clients that cannot be placed")
	fs.StringVar(&c.Overrides, "overrides", "", "country=region pairs tried first, e.g. RU=eu-west,CN=ap-south")
	fs.StringVar(&c.MMDB, "mmdb", "", "country MMDB (DB-IP lite or MaxMind layout); empty: hint header or default only")
	fs.StringVar(&c.HintHeader, "hint-header", "X-Region", "header a client may set to choose its region")
	fs.StringVar(&c.Datacenters, "datacenters", "", "region=datacenter pairs: follow edges in Consul")
	fs.StringVar(&c.EdgeService, "edge-service", "sentiment-edge", "edges' Consul service name")
	fs.StringVar(&c.Static, "static", "", "region=host:port|host:port pairs: fixed edges, health-probed (no Consul)")
	fs.StringVar(&c.GRPCListen, "grpc-listen", "", "forward Open Inference Protocol gRPC calls on this address (same TLS as -listen); empty: off")
	fs.StringVar(&c.StaticGRPC, "static-grpc", "", "with -static: region=host:port|host:port pairs of the edges' gRPC listeners")
	fs.DurationVar(&c.PerTryTimeout, "per-try-timeout", 500*time.Millisecond, "timeout of one attempt")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "regions tried per request")
	fs.Float64Var(&c.RetryRatio, "retry-ratio", 0.2, "retries allowed as a share of requests over 10 s (plus 10/s)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "CIDRs whose X-Forwarded-For and X-Routing-Key are believed (a gateway in front that knows its users); other clients' X-Routing-Key is dropped")
	fs.Float64Var(&c.RatePerMinute, "rate-limit", 100, "requests per minute per client address at this router (0: off)")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "bucket size (default: a minute's worth)")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", 64<<10, "largest request body (the edge's limit)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 256, "open connections per client address (0: no limit)")
	fs.IntVar(&c.Concurrency, "max-concurrency", 10000, "requests served at once; more get 503")
	fs.StringVar(&c.InternalToken, "internal-token", "", "bearer token /metrics, /v1/route and /v1/history require (empty: open): from GEO_INTERNAL_TOKEN only, never the command line")
	fs.Float64Var(&c.AccessLog, "access-log-sample", 0.001, "share of requests given an access log line, 0 to 1 (ids, status, timing; never a text)")
	c.TLS.Register(fs)
	fs.BoolVar(&c.EdgeTLS, "edge-tls", false, "reach edges over https (implied by -edge-ca)")
	fs.StringVar(&c.EdgeCA, "edge-ca", "", "CA file edges' certificates must chain to (default: the system's)")
	fs.StringVar(&c.EdgeCert, "edge-cert", "", "client certificate file presented to edges (mutual TLS; with -edge-key); reloaded when it changes")
	fs.StringVar(&c.EdgeKey, "edge-key", "", "client key file presented to edges")
	fs.StringVar(&c.EdgeServerName, "edge-server-name", "", "name every edge's certificate must carry (default: the address dialled, from Consul)")
	c.Flags.Register(fs, "sentiment-geo")
	if err := config.Parse(fs, args, "GEO"); err != nil {
		return Config{}, err
	}
	var err error
	if c.regions, err = regions.Parse(c.Regions); err != nil {
		return Config{}, fmt.Errorf("-regions: %w", err)
	}
	if c.overrides, err = config.Pairs(c.Overrides); err != nil {
		return Config{}, fmt.Errorf("-overrides %w", err)
	}
	if c.staticGRPC, err = config.Pairs(c.StaticGRPC); err != nil {
		return Config{}, fmt.Errorf("-static-grpc: %w", err)
	}
	if c.static, err = config.Pairs(c.Static); err != nil {
		return Config{}, fmt.Errorf("-static %w", err)
	}
	if c.datacenters, err = config.Pairs(c.Datacenters); err != nil {
		return Config{}, fmt.Errorf("-datacenters %w", err)
	}
	if c.proxies, err = clientip.ParsePrefixes(c.TrustedProxies); err != nil {
		return Config{}, fmt.Errorf("-trusted-proxies: %w", err)
	}
	return c, c.Validate()
}

// Validate checks every setting that can be checked before start, so a bad
// command line exits 2 with the reason.
func (c Config) Validate() error {
	if (c.Datacenters == "") == (c.Static == "") {
		return errors.New("set exactly one of -datacenters (Consul) and -static")
	}
	if c.Datacenters != "" && c.ConsulAddr == "" {
		return errors.New("-datacenters needs -consul")
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if (c.EdgeCert == "") != (c.EdgeKey == "") {
		return errors.New("-edge-cert and -edge-key go together")
	}
	if c.PerTryTimeout <= 0 || c.MaxAttempts <= 0 || c.RetryRatio < 0 {
		return errors.New("-per-try-timeout and -max-attempts must be positive, -retry-ratio not negative")
	}
	if c.AccessLog < 0 || c.AccessLog > 1 {
		return errors.New("-access-log-sample must be between 0 and 1")
	}
	if c.RatePerMinute < 0 || c.MaxBodyBytes <= 0 || c.MaxConnsPerIP < 0 || c.Concurrency <= 0 {
		return errors.New("-rate-limit and -max-conns-per-ip must not be negative, -max-body-bytes and -max-concurrency must be positive")
	}
	return nil
}

func main() {
	service.Main("geo", parseConfig, func(c Config) string { return c.LogLevel }, run)
}

func run(cfg Config, log *slog.Logger) error {
	if err := cfg.ServeProfiler(log); err != nil {
		return err
	}
	loc := &geo.Locator{Regions: cfg.regions, Overrides: map[string]string{}, Default: cfg.Default}
	for cc, region := range cfg.overrides {
		loc.Overrides[strings.ToUpper(cc)] = region
	}
	if cfg.MMDB != "" {
		db, err := maxminddb.Open(cfg.MMDB)
		if err != nil {
			return fmt.Errorf("cannot open MMDB %q: %w", cfg.MMDB, err)
		}
		defer db.Close()
		loc.DB = db
	}
	edgeTLS, err := cfg.edgeTLS(log)
	if err != nil {
		return err
	}
	router := geo.NewRouter(geo.Config{Locator: loc, HintHeader: cfg.HintHeader, TrustedProxies: cfg.proxies, EdgeTLS: edgeTLS,
		PerTryTimeout: cfg.PerTryTimeout, MaxAttempts: cfg.MaxAttempts, RetryRatio: cfg.RetryRatio,
		RatePerMinute: cfg.RatePerMinute, RateBurst: cfg.RateBurst, InternalToken: cfg.InternalToken, AccessLogSample: cfg.AccessLog, TLS: cfg.TLS.Enabled(), Logger: log})
	if cfg.InternalToken == "" {
		log.Warn("/metrics and /v1/route are open to every client: set GEO_INTERNAL_TOKEN on a public router")
	}
	defer router.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	if err := follow(ctx, &wg, cfg, router, log); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", cfg.Listen, err)
	}
	// The front door: bodies no larger than an edge takes, a cap on
	// connections per client and on requests at once, and slow clients
	// cut off, so a few cheap connections cannot hold the router's memory.
	// The timeouts' deadlines are kept by one watchdog (internal/deadline),
	// under TLS so the handshake's are too. No Server header, as at the
	// edge: it would name the software to a scanner.
	ln = deadline.NewListener(ln, deadline.ServerTick)
	if ln, err = cfg.TLS.Listener(ln, log); err != nil {
		return err
	}
	srv := router.Server(frontdoor.RequireClientCert(cfg.TLS, router.Handler()),
		frontdoor.Limits{MaxBodyBytes: cfg.MaxBodyBytes, MaxConnsPerIP: cfg.MaxConnsPerIP, Concurrency: cfg.Concurrency})
	frontdoor.ExportOpenConnections("geo_open_connections", srv)
	// The gRPC listener is bound before the HTTP one serves: once the
	// router answers its readiness probe, both take calls.
	gs, err := startGRPC(cfg, router, log)
	if err != nil {
		return err
	}
	failed := service.Go(func() error { return srv.Serve(ln) })
	log.Info("geo router listening", "addr", ln.Addr().String(), "scheme", cfg.TLS.Scheme(), "edges_over", router.EdgeScheme(), "regions", len(cfg.regions), "version", Version)
	shutdown := func(ctx context.Context) error {
		return errors.Join(srv.ShutdownWithContext(ctx), service.StopGRPC(ctx, gs))
	}
	return cfg.Drain(log, service.Serving{Failed: failed, SetDraining: router.SetDraining, StopWork: cancel,
		Shutdown: shutdown, Wait: wg.Wait})
}

// edgeTLS is the TLS configuration of the hop to edges; nil for plain
// HTTP.
func (c Config) edgeTLS(log *slog.Logger) (*tls.Config, error) {
	if !c.EdgeTLS && c.EdgeCA == "" && c.EdgeCert == "" && c.EdgeServerName == "" {
		return nil, nil
	}
	cfg, err := tlsfiles.ClientConfig(c.EdgeCA, c.EdgeCert, c.EdgeKey, log)
	if err != nil {
		return nil, fmt.Errorf("edge TLS: %w", err)
	}
	// Edges are dialled at the pod addresses Consul gives; a shared name
	// spares every edge a certificate for its own address.
	cfg.ServerName = c.EdgeServerName
	return cfg, nil
}

// follow keeps the router's view of healthy edges current: from Consul
// (one blocking-query watcher per region's datacenter) or by probing a
// static list.
func follow(ctx context.Context, wg *sync.WaitGroup, cfg Config, router *geo.Router, log *slog.Logger) error {
	if cfg.Static != "" {
		for region, list := range cfg.static {
			addrs := strings.Split(list, "|")
			wg.Add(1)
			go func() { defer wg.Done(); geo.Probe(ctx, router, region, addrs, 500*time.Millisecond) }()
		}
		for region, list := range cfg.staticGRPC {
			router.UpdateGRPC(region, strings.Split(list, "|"))
		}
		return nil
	}
	consul, err := discovery.NewClient(cfg.ConsulAddr, cfg.ConsulToken)
	if err != nil {
		return err
	}
	discovery.FollowRegionInstances(ctx, wg, consul, cfg.EdgeService, cfg.datacenters, func(region string, ins []discovery.Instance) {
		addrs := make([]string, 0, len(ins))
		var grpcAddrs []string
		for _, in := range ins {
			addrs = append(addrs, in.HostPort())
			if a := in.GRPCAddr(); a != "" {
				grpcAddrs = append(grpcAddrs, a)
			}
		}
		router.Update(region, addrs)
		router.UpdateGRPC(region, grpcAddrs)
	}, log)
	return nil
}
