package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Service is a binary of this module running for a test.
type Service struct {
	*Process
	Addr string // the host:port it listens on
	URL  string // http:// or https:// and Addr
}

// TLSFiles makes a service serve TLS: its certificate and key, the CA its
// clients' certificates must chain to (mutual TLS) if set, and the client
// its readiness is probed with (one that trusts its CA, with a client
// certificate when mutual).
type TLSFiles struct {
	Cert, Key, ClientCA string
	Client              *http.Client
}

func (f *TLSFiles) args() []string {
	if f == nil {
		return nil
	}
	args := []string{"-tls-cert", f.Cert, "-tls-key", f.Key}
	if f.ClientCA != "" {
		args = append(args, "-tls-client-ca", f.ClientCA)
	}
	return args
}

// Edge says how to run the edge binary (cmd/edge). Zero fields take the
// tests' defaults: a free loopback port, region us-east, a fresh cache
// directory, no rate limit, no shutdown delay, the embedded default model.
type Edge struct {
	Name           string // in logs and failures; default "edge-<region>"
	Addr           string
	Region         string
	Model          string // -model (the registry's name and the /v2 name)
	Registry       string // registry URL(s); empty: the embedded default model
	Token          string // the registry reader token (EDGE_REGISTRY_TOKEN)
	CacheDir       string
	Consul         string // the agent to register with
	ServiceID      string
	RateLimit      float64 // requests a minute per client; 0: off
	TrustedProxies string  // CIDRs whose X-Forwarded-For and X-Routing-Key are believed
	TLS            *TLSFiles
	// WaitLive waits for liveness only: an edge that has no model yet (cold,
	// its registry down) is live but not ready.
	WaitLive bool
	Netns    string   // run inside this network namespace (ip netns exec)
	Args     []string // further flags; a flag given twice takes the last
	Env      []string
}

// StartEdge runs the edge binary until the test ends, and waits until it is
// ready (it serves a model).
func StartEdge(t testing.TB, e Edge) *Service {
	t.Helper()
	if e.Region == "" {
		e.Region = "us-east"
	}
	if e.Name == "" {
		e.Name = "edge-" + e.Region
	}
	if e.CacheDir == "" {
		e.CacheDir = t.TempDir()
	}
	e.Addr = freeAddr(t, e.Addr)
	args := []string{"-listen", e.Addr, "-region", e.Region, "-cache-dir", e.CacheDir,
		"-rate-limit", strconv.FormatFloat(e.RateLimit, 'g', -1, 64), "-shutdown-delay", "0s"}
	args = appendFlags(args, "-model", e.Model, "-registry", e.Registry, "-consul", e.Consul, "-service-id", e.ServiceID,
		"-trusted-proxies", e.TrustedProxies)
	args = append(append(args, e.TLS.args()...), e.Args...)
	env := e.Env
	if e.Token != "" {
		env = append([]string{"EDGE_REGISTRY_TOKEN=" + e.Token}, env...)
	}
	probe := "/health/ready"
	if e.WaitLive {
		probe = "/health/live"
	}
	return start(t, e.Name, GoBinary(t, "./cmd/edge"), e.Netns, args, env, e.Addr, e.TLS, probe)
}

// Geo says how to run the geo router (cmd/geo). Zero fields take the
// tests' defaults: a free loopback port, no rate limit and no cap on
// connections per address (tests send from one address), no shutdown
// delay. Edges come from Static (region=addr|addr,…) or from Consul.
type Geo struct {
	Name           string // default "geo"
	Addr           string
	Static         string // -static
	Consul         string // an agent of the WAN-joined datacenters
	Datacenters    string // -datacenters region=dc,…
	Regions        string // -regions name=lat,lon;…
	Default        string // -default-region
	PerTry         string // -per-try-timeout, e.g. "300ms"
	RateLimit      float64
	TrustedProxies string
	TLS            *TLSFiles
	// WaitReady waits for readiness (a healthy edge in some region), not
	// only liveness.
	WaitReady bool
	Args      []string
	Env       []string
}

// StartGeo runs the geo router until the test ends, and waits until it is
// live, or ready with WaitReady.
func StartGeo(t testing.TB, g Geo) *Service {
	t.Helper()
	if g.Name == "" {
		g.Name = "geo"
	}
	g.Addr = freeAddr(t, g.Addr)
	probe := "/health/live"
	if g.WaitReady {
		probe = "/health/ready"
	}
	return start(t, g.Name, GoBinary(t, "./cmd/geo"), "", g.args(), g.Env, g.Addr, g.TLS, probe)
}

// RunGeo runs the geo router with g's options and returns its output and
// exit error once it stops by itself (within a minute): for the start-ups
// it must refuse.
func RunGeo(t testing.TB, g Geo) (string, error) {
	t.Helper()
	g.Addr = freeAddr(t, g.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, GoBinary(t, "./cmd/geo"), g.args()...)
	cmd.Env = append(os.Environ(), g.Env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// args is the router's command line for g's options.
func (g Geo) args() []string {
	args := []string{"-listen", g.Addr, "-shutdown-delay", "0s", "-rate-limit", strconv.FormatFloat(g.RateLimit, 'g', -1, 64)}
	if g.RateLimit == 0 {
		args = append(args, "-max-conns-per-ip", "0")
	}
	args = appendFlags(args, "-static", g.Static, "-consul", g.Consul, "-datacenters", g.Datacenters, "-regions", g.Regions,
		"-default-region", g.Default, "-per-try-timeout", g.PerTry, "-trusted-proxies", g.TrustedProxies)
	return append(append(args, g.TLS.args()...), g.Args...)
}

// start runs bin (inside netns, if set) until the test ends and waits
// until GET probe answers 200.
func start(t testing.TB, name, bin, netns string, args, env []string, addr string, tls *TLSFiles, probe string) *Service {
	t.Helper()
	if netns != "" {
		args = append([]string{"netns", "exec", netns, bin}, args...)
		bin = "ip"
	}
	s := &Service{Addr: addr, URL: "http://" + addr}
	var client *http.Client
	if tls != nil {
		s.URL, client = "https://"+addr, tls.Client
	}
	s.Process = StartTLSService(t, name, bin, args, env, s.URL+probe, client)
	return s
}

// appendFlags appends each flag of the name, value pairs whose value is
// set.
func appendFlags(args []string, pairs ...string) []string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			args = append(args, pairs[i], pairs[i+1])
		}
	}
	return args
}

// freeAddr is addr, or a free loopback address when addr is empty.
func freeAddr(t testing.TB, addr string) string {
	t.Helper()
	if addr != "" {
		return addr
	}
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0])
}
