// Package service holds what the long-running binaries (registry, edge,
// geo router) share around their own logic: the Consul and lifecycle
// flags, the drain-then-stop shutdown sequence, and Go's profiler on a
// loopback address when asked for.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// Flags are the settings every service binary has.
type Flags struct {
	ConsulAddr    string
	ConsulToken   string
	ServiceName   string
	ServiceID     string
	Advertise     string
	ShutdownDelay time.Duration
	LogLevel      string
	PprofListen   string
}

// Register defines the flags on fs; name is the default Consul service name.
func (f *Flags) Register(fs *flag.FlagSet, name string) {
	fs.StringVar(&f.ConsulAddr, "consul", "", "Consul agent address (this region's datacenter); empty: no registration")
	fs.StringVar(&f.ConsulToken, "consul-token", "", "Consul ACL token: from the environment (*_CONSUL_TOKEN) only, never the command line")
	fs.StringVar(&f.ServiceName, "service-name", name, "Consul service name")
	fs.StringVar(&f.ServiceID, "service-id", "", "Consul service ID (default: derived from name and address)")
	fs.StringVar(&f.Advertise, "advertise", "", "host:port others reach this service at (default: the listen address)")
	fs.DurationVar(&f.ShutdownDelay, "shutdown-delay", 5*time.Second, "how long readiness fails before the server stops")
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.PprofListen, "pprof-listen", "", "serve Go's profiler (/debug/pprof/) on this loopback address; empty: off")
}

// ServeProfiler serves Go's profiler (net/http/pprof) on -pprof-listen,
// when set, for the life of the process: `go tool pprof` reads CPU and
// heap profiles from it. Only a loopback address is taken: a profile shows
// the process's internals.
func (f *Flags) ServeProfiler(log *slog.Logger) error {
	if f.PprofListen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(f.PprofListen)
	if err != nil {
		return fmt.Errorf("-pprof-listen %q: %w", f.PprofListen, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("-pprof-listen %q: only a loopback address is allowed (a profile shows the process's internals)", f.PprofListen)
	}
	ln, err := net.Listen("tcp", f.PprofListen)
	if err != nil {
		return fmt.Errorf("cannot listen on -pprof-listen %s: %w", f.PprofListen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return nil
}

// AwaitShutdown blocks until SIGINT or SIGTERM (or serveErr delivers),
// then turns readiness off with setDraining and waits ShutdownDelay so
// Consul and load balancers route away; a second signal cuts the wait
// short. It returns the serve error, if that is what ended the wait.
func (f *Flags) AwaitShutdown(log *slog.Logger, serveErr <-chan error, setDraining func(bool)) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case err := <-serveErr:
		return err
	case sig := <-sigs:
		log.Info("shutting down: readiness off, draining", "signal", sig.String(), "delay", f.ShutdownDelay)
	}
	setDraining(true)
	select {
	case <-time.After(f.ShutdownDelay):
	case <-sigs:
		log.Warn("second signal: stopping now")
	}
	return nil
}

// Registration describes a service listening at listenAddr to Consul: at
// -advertise (default listenAddr), as -service-id (default
// name-idPart-host-port: unique on one agent, where several pods of a
// node share the node's agent on the same port), with a readiness
// check of /health/ready every second, over https when tls (the
// certificate is the deployment's own, not the agent's to judge).
func (f *Flags) Registration(listenAddr, idPart string, tls bool) (discovery.Registration, error) {
	adv := f.Advertise
	if adv == "" {
		adv = listenAddr
	}
	host, port, err := discovery.SplitHostPort(adv)
	if err != nil {
		return discovery.Registration{}, fmt.Errorf("-advertise: %w", err)
	}
	id := f.ServiceID
	if id == "" {
		parts := []string{f.ServiceName}
		for _, p := range []string{idPart, strings.NewReplacer(".", "-", ":", "-").Replace(host), strconv.Itoa(port)} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		id = strings.Join(parts, "-")
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return discovery.Registration{ID: id, Name: f.ServiceName, Address: host, Port: port,
		CheckURL: scheme + "://" + adv + "/health/ready", CheckInterval: time.Second, CheckTimeout: time.Second,
		TLSSkipVerify: tls, SuccessBeforePassing: 1, DeregisterAfter: 10 * time.Minute}, nil
}

// ShutdownTimeout bounds how long the requests in flight at shutdown may
// take to finish once the drain delay is over.
const ShutdownTimeout = 15 * time.Second

// Serving is a started service as its main stops it.
type Serving struct {
	// Failed delivers the listener's Serve result (Go starts it).
	Failed <-chan error
	// SetDraining turns readiness off.
	SetDraining func(bool)
	// StopWork cancels the background work (syncers, watchers, loops).
	StopWork context.CancelFunc
	// Deregister removes the service from Consul; nil when not registered.
	Deregister func() error
	// Shutdown stops the listener and waits for the requests in flight.
	Shutdown func(context.Context) error
	// Wait, when set, returns once the background work has ended.
	Wait func()
}

// Go runs serve (a listener's Serve) and returns the channel its result
// arrives on.
func Go(serve func() error) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	return errc
}

// Drain is every service's tail: it waits for a signal (or the listener's
// failure), turns readiness off and waits the drain delay (AwaitShutdown),
// stops the background work, deregisters from Consul, shuts the listener
// down within ShutdownTimeout and waits for the background work.
func (f *Flags) Drain(log *slog.Logger, s Serving) error {
	if err := f.AwaitShutdown(log, s.Failed, s.SetDraining); err != nil {
		return err
	}
	s.StopWork()
	if s.Deregister != nil {
		if err := s.Deregister(); err != nil {
			log.Warn("cannot deregister", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.Shutdown(ctx)
	if s.Wait != nil {
		s.Wait()
	}
	return err
}

// Main is a service binary's main: it parses the configuration (exit 2
// with the error on a bad command line), makes the JSON logger at the
// configured level, and runs the service (exit 1 when it fails).
func Main[C any](name string, parse func(args []string) (C, error), level func(C) string, run func(C, *slog.Logger) error) {
	cfg, err := parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	log, err := obs.NewLogger(os.Stderr, level(cfg), name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	// # TYPE lines let Prometheus and promtool tell counters from gauges.
	metrics.ExposeMetadata(true)
	if err := run(cfg, log); err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}

// StopGRPC stops a gRPC server (nil: none) gracefully, letting the calls
// in flight finish until ctx is done, then closing what is left.
func StopGRPC(ctx context.Context, gs *grpc.Server) error {
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

// ServeGRPC listens on addr and serves the gRPC server newServer makes,
// with the listener TLS of tlsServer (none without a certificate), until
// the server stops. It returns the server and the address it listens on.
func ServeGRPC(addr string, tlsServer tlsfiles.Server, newServer func(...grpc.ServerOption) *grpc.Server, log *slog.Logger) (*grpc.Server, *net.TCPAddr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot listen on -grpc-listen %s: %w", addr, err)
	}
	var opts []grpc.ServerOption
	tlsCfg, err := tlsServer.Config(log)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := newServer(opts...)
	go func() {
		if err := gs.Serve(ln); err != nil {
			log.Error("grpc listener stopped", "err", err)
		}
	}()
	log.Info("grpc listening", "addr", ln.Addr().String())
	return gs, ln.Addr().(*net.TCPAddr), nil
}
