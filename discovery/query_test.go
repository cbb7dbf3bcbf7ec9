package discovery_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/testenv"
)

// resolver asks the agent's DNS interface, as a DNS-based client would.
func resolver(a *testenv.ConsulAgent) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(a.DNSPort))
	}}
}

// srvPorts returns the ports the SRV answer for name lists ("" on NXDOMAIN).
func srvPorts(t *testing.T, r *net.Resolver, name string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil
	}
	var ports []int
	for _, s := range srvs {
		ports = append(ports, int(s.Port))
	}
	return ports
}

func TestFailoverQueryOverDNS(t *testing.T) {
	consul := testenv.Consul(t, "dc-us", "dc-eu", "dc-ap")
	us := consul.Agent("dc-us")
	register := func(dc, id string) (port int, stop func()) {
		port, stop = healthServer(t)
		err := discovery.Register(consul.Agent(dc).Client().Agent(), discovery.Registration{
			ID: id, Name: "sentiment-edge", Address: "127.0.0.1", Port: port,
			CheckURL:      "http://127.0.0.1:" + strconv.Itoa(port) + "/health",
			CheckInterval: 200 * time.Millisecond, CheckTimeout: 200 * time.Millisecond,
			SuccessBeforePassing: 1, FailuresBeforeCritical: 1, DeregisterAfter: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		return port, stop
	}
	euPort, _ := register("dc-eu", "edge-eu")
	apPort, stopAP := register("dc-ap", "edge-ap")

	q := discovery.FailoverQuery{Name: "sentiment", Service: "sentiment-edge", Datacenters: []string{"dc-ap", "dc-eu"}, TTL: "1s"}
	id, err := discovery.UpsertQuery(us.Client(), "dc-us", q)
	if err != nil {
		t.Fatal(err)
	}
	// Upserting again keeps the one query.
	if id2, err := discovery.UpsertQuery(us.Client(), "dc-us", q); err != nil || id2 != id {
		t.Fatalf("second upsert: id %q (first %q), %v", id2, id, err)
	}

	r := resolver(us)
	waitPorts := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		var got []int
		for time.Now().Before(deadline) {
			if got = srvPorts(t, r, "sentiment.query.consul"); len(got) == 1 && got[0] == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: DNS answered ports %v, want [%d]", what, got, want)
	}
	// No edge in dc-us: the first failover datacenter answers.
	waitPorts("dc-us empty", apPort)
	// dc-ap's edge fails its check: the next datacenter answers.
	stopAP()
	waitPorts("dc-ap critical", euPort)
	// A local edge wins over every remote one.
	usPort, _ := register("dc-us", "edge-us")
	waitPorts("dc-us edge passing", usPort)
}
