package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

// TestDNSQueryCLI creates the failover queries on three real Consul
// datacenters and reads them back from each.
func TestDNSQueryCLI(t *testing.T) {
	consul := testenv.Consul(t, "dc-us", "dc-eu", "dc-ap")
	args := []string{"dns-query", "--consul", consul.Agent("dc-us").HTTPAddr(),
		"--datacenters", "us-east=dc-us,eu-west=dc-eu,ap-south=dc-ap"}
	for run := 0; run < 2; run++ { // the second run updates in place
		if code, out, errOut := sentctl(t, args...); code != 0 || strings.Count(out, "query sentiment") != 3 {
			t.Fatalf("run %d: exit %d\n%s%s", run, code, out, errOut)
		}
	}
	want := map[string][]string{"dc-us": {"dc-eu", "dc-ap"}, "dc-eu": {"dc-us", "dc-ap"}, "dc-ap": {"dc-eu", "dc-us"}}
	for dc, failover := range want {
		qs, _, err := consul.Agent(dc).Client().PreparedQuery().List(&api.QueryOptions{Datacenter: dc})
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) != 1 || qs[0].Name != "sentiment" || !qs[0].Service.OnlyPassing ||
			!slices.Equal(qs[0].Service.Failover.Datacenters, failover) {
			t.Errorf("%s: queries %+v, want one named sentiment failing over to %v", dc, qs, failover)
		}
	}
}

func TestDNSQueryBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"dns-query"}, // no --datacenters
		{"dns-query", "--datacenters", "us-east"},
		{"dns-query", "--datacenters", "mars=dc-mars"},
		{"dns-query", "--datacenters", "us-east=dc-us", "--regions", "us-east=100,0"},
	} {
		if code, _, errOut := sentctl(t, args...); code != 2 || !strings.Contains(errOut, "sentctl dns-query:") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}
