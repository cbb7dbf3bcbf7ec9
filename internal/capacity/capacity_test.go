package capacity

import (
	"strconv"
	"strings"
	"testing"
)

// TestCommittedMeasurementsPlan: the measurements committed with the build
// are complete enough to plan with, and name their sources.
func TestCommittedMeasurementsPlan(t *testing.T) {
	b, s := Committed()
	lines, err := Plan(b, s, Target{RPS: 1e6, Regions: 10, ModelMiB: 250, PromotesPerMonth: 30, SurviveRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if l.Source == "" || l.Value == "" {
			t.Errorf("%q has no value or no source", l.Name)
		}
	}
}

func plan(t *testing.T, tg Target) map[string]string {
	t.Helper()
	b := Bench{EdgeRPS: 50000, Cores: 2, EdgeRSSBytes: 40 << 20, Date: "test"}
	s := Scale{Regions: 3, EdgesPerRegion: 10, BundleBytes: 64 << 20, RegistryBaseRSS: 30 << 20,
		Promotes: []ScaleRow{{Followers: 1000, Seconds: 100, P99: 90, CentralEgress: 3, BucketEgress: 3, S3Requests: 900,
			RegistryCPU: 3, RegistryRSS: 50 << 20, ConsulQueries: 6000}}}
	lines, err := Plan(b, s, tg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range lines {
		out[l.Name] = l.Value
	}
	return out
}

func leadingInt(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.Fields(s)[0])
	if err != nil {
		t.Fatalf("%q does not start with a number", s)
	}
	return n
}

// TestPlanFollowsTheMeasurements: edges follow the requests and the
// measured rate (25,000 req/s a core: 1e6 over 10 regions surviving one's
// loss is 111,111 a region; a 2-core edge at 60% takes 30,000: 4 edges),
// central egress follows regions × model, not the fleet.
func TestPlanFollowsTheMeasurements(t *testing.T) {
	p := plan(t, Target{RPS: 1e6, Regions: 10, ModelMiB: 250, PromotesPerMonth: 30, SurviveRegion: true})
	if got := leadingInt(t, p["edges per region"]); got != 4 {
		t.Errorf("edges per region %q, want 4", p["edges per region"])
	}
	if !strings.Contains(p["central egress per promote"], "1.00 artifacts per region: 2500 MiB") {
		t.Errorf("central egress %q, want one 250 MiB copy for each of 10 regions", p["central egress per promote"])
	}
	p2 := plan(t, Target{RPS: 1e7, Regions: 10, ModelMiB: 250, PromotesPerMonth: 30, SurviveRegion: true})
	if got := leadingInt(t, p2["edges per region"]); got != 38 {
		t.Errorf("ten times the requests: edges per region %q, want 38", p2["edges per region"])
	}
	if p2["central egress per promote"] != p["central egress per promote"] {
		t.Errorf("central egress grew with the fleet: %q vs %q", p2["central egress per promote"], p["central egress per promote"])
	}
	if _, err := Plan(Bench{}, Scale{}, Target{RPS: 1, Regions: 1, ModelMiB: 1}); err == nil {
		t.Error("a plan without measurements did not fail")
	}
}
