package discovery_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/testenv"
)

// healthServer answers GET /health with 200 until closed.
func healthServer(t *testing.T) (port int, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, func() { srv.Close() }
}

// waitSnapshot reads snapshots until ok accepts one or timeout passes.
func waitSnapshot(t *testing.T, ch <-chan discovery.Snapshot, timeout time.Duration, what string, ok func(discovery.Snapshot) bool) discovery.Snapshot {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s within %s", what, timeout)
		}
	}
}

func TestRegisterWatchAcrossDatacenters(t *testing.T) {
	consul := testenv.Consul(t, "dc-us", "dc-eu", "dc-ap")
	eu, us := consul.Agent("dc-eu"), consul.Agent("dc-us")
	port, stopHealth := healthServer(t)

	reg := discovery.Registration{
		ID: "edge-eu-1", Name: "sentiment-edge", Address: "127.0.0.1", Port: port,
		Tags: []string{"eu-west"}, Meta: map[string]string{"region": "eu-west", "model_version": "v1"},
		CheckURL:      "http://127.0.0.1:" + strconv.Itoa(port) + "/health",
		CheckInterval: 250 * time.Millisecond, CheckTimeout: 250 * time.Millisecond,
		SuccessBeforePassing: 1, FailuresBeforeCritical: 2,
		DeregisterAfter: time.Minute,
	}
	if err := discovery.Register(eu.Client().Agent(), reg); err != nil {
		t.Fatal(err)
	}

	snaps := make(chan discovery.Snapshot, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &discovery.Watcher{
		Client: us.Client(), Service: "sentiment-edge", Datacenter: "dc-eu",
		Wait: 5 * time.Second, OnSnapshot: func(s discovery.Snapshot) { snaps <- s },
	}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	s := waitSnapshot(t, snaps, 15*time.Second, "edge-eu-1 passing", func(s discovery.Snapshot) bool {
		p := s.Passing()
		return len(p) == 1 && p[0].ID == "edge-eu-1"
	})
	in := s.Passing()[0]
	if in.Datacenter != "dc-eu" || in.Meta["region"] != "eu-west" || in.HostPort() != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("instance seen from dc-us = %+v", in)
	}

	// Re-registering updates meta in place (how edges report a new version).
	reg.Meta = map[string]string{"region": "eu-west", "model_version": "v2"}
	if err := discovery.Register(eu.Client().Agent(), reg); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, snaps, 10*time.Second, "model_version v2, passing", func(s discovery.Snapshot) bool {
		p := s.Passing()
		return len(p) == 1 && p[0].Meta["model_version"] == "v2"
	})

	stopped := time.Now()
	stopHealth()
	waitSnapshot(t, snaps, 3*time.Second, "edge-eu-1 critical", func(s discovery.Snapshot) bool {
		return len(s.Instances) == 1 && !s.Instances[0].Passing()
	})
	t.Logf("critical seen from dc-us %.2fs after the health endpoint stopped", time.Since(stopped).Seconds())

	if err := discovery.Deregister(eu.Client().Agent(), "edge-eu-1"); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, snaps, 5*time.Second, "no instances", func(s discovery.Snapshot) bool {
		return len(s.Instances) == 0
	})
}

func TestWatcherKeepsLastViewWhenAgentGoesAway(t *testing.T) {
	consul := testenv.Consul(t, "dc-us")
	agent := consul.Agent("dc-us")
	port, _ := healthServer(t)
	err := discovery.Register(agent.Client().Agent(), discovery.Registration{
		ID: "edge-1", Name: "sentiment-edge", Address: "127.0.0.1", Port: port,
		CheckURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", CheckInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	snaps := make(chan discovery.Snapshot, 64)
	errs := make(chan error, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &discovery.Watcher{
		Client: agent.Client(), Service: "sentiment-edge", Wait: 2 * time.Second,
		OnSnapshot: func(s discovery.Snapshot) { snaps <- s },
		OnError:    func(err error) { errs <- err },
	}
	go w.Run(ctx)
	s := waitSnapshot(t, snaps, 10*time.Second, "one passing", func(s discovery.Snapshot) bool { return len(s.Passing()) == 1 })
	if s.Datacenter != "dc-us" {
		t.Fatalf("datacenter of the local agent's snapshot = %q", s.Datacenter)
	}
	agent.Process().Kill()
	select {
	case <-errs:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher reported no error after the agent died")
	}
	// No snapshot replaces the last good view while the agent is gone.
	select {
	case s := <-snaps:
		t.Fatalf("snapshot delivered with the agent down: %+v", s)
	case <-time.After(time.Second):
	}
}

func TestRegistrationValidation(t *testing.T) {
	f := func(r discovery.Registration) {
		t.Helper()
		if err := r.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", r)
		}
	}
	f(discovery.Registration{Name: "x", Port: 1, CheckURL: "http://x"})
	f(discovery.Registration{ID: "x", Port: 1, CheckURL: "http://x"})
	f(discovery.Registration{ID: "x", Name: "x", Port: 0, CheckURL: "http://x"})
	f(discovery.Registration{ID: "x", Name: "x", Port: 70000, CheckURL: "http://x"})
	f(discovery.Registration{ID: "x", Name: "x", Port: 1})
}

// TestRegistrarHeals: the registrar applies meta updates at once, and
// after the agent restarts (a dev agent forgets every registration) its
// sync loop registers the instance again with the latest meta.
func TestRegistrarHeals(t *testing.T) {
	consul := testenv.Consul(t, "dc-us")
	agent := consul.Agent("dc-us")
	port, _ := healthServer(t)
	r := discovery.NewRegistrar(agent.Client().Agent(), discovery.Registration{
		ID: "edge-1", Name: "sentiment-edge", Address: "127.0.0.1", Port: port,
		Meta:     map[string]string{discovery.MetaRegion: "us-east"},
		CheckURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/health", CheckInterval: 100 * time.Millisecond,
	}, func() bool { return true }, nil)
	if err := r.Update(func(reg *discovery.Registration) { reg.Meta[discovery.MetaVersion] = "v2" }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, 100*time.Millisecond) }()
	meta := func() map[string]string {
		svc, _, err := agent.Client().Agent().Service("edge-1", nil)
		if err != nil {
			return nil
		}
		return svc.Meta
	}
	if m := meta(); m[discovery.MetaVersion] != "v2" || m[discovery.MetaRegion] != "us-east" {
		t.Fatalf("meta %v, want region and version v2", m)
	}
	agent.Process().Stop(5 * time.Second)
	if err := r.Update(func(reg *discovery.Registration) { reg.Meta[discovery.MetaVersion] = "v3" }); err == nil {
		t.Fatal("an update with the agent down reported success")
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for meta()[discovery.MetaVersion] != "v3" {
		if time.Now().After(deadline) {
			t.Fatalf("not registered again with the latest meta 20s after the agent restarted: %v", meta())
		}
		time.Sleep(50 * time.Millisecond)
	}
	checks, _, err := agent.Client().Health().Checks("sentiment-edge", nil)
	if err != nil || checks.AggregatedStatus() != "passing" {
		t.Fatalf("a ready instance must be registered passing: %v %v", checks, err)
	}
	if err := r.Deregister(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if m := meta(); m != nil {
		t.Fatalf("still registered after Deregister: %v", m)
	}
}
