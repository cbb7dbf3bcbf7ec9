package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestShortScale is make scale's short version: three regions of two real
// edges, 90 simulated followers, 8 MiB artifacts, two promotes. Every edge
// and follower must hold each promoted version (the harness fails
// otherwise), the central registry must send at most 1.1 copies per region,
// and no answer may be a 5xx other than a planned 503 with Retry-After.
// Its figures are printed, not judged: the machine may be busy.
func TestShortScale(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service test: skipped in -short mode")
	}
	var out bytes.Buffer
	rep, err := run(config{Dir: t.TempDir(), Regions: []string{"us-east", "eu-west", "ap-south"}, Edges: 2,
		Followers: []int{30, 90}, Bits: 21, Streams: 64, Slots: 4, Timeout: 5 * time.Minute}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d promotes measured, want 2", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if limit := 1.1 * float64(rep.Regions); r.CentralEgress > limit || r.CentralEgress < 1 {
			t.Errorf("%d followers: central egress %.2f bundles, want at most %.1f (and the seeders' copies)", r.Followers, r.CentralEgress, limit)
		}
		if r.Unplanned != 0 {
			t.Errorf("%d followers: %d unplanned 5xx answers", r.Followers, r.Unplanned)
		}
		if n := r.Regions["all"].N; n != r.Followers+rep.Regions*rep.EdgesPerReg {
			t.Errorf("%d followers: %d arrivals measured, want every follower and edge", r.Followers, n)
		}
	}
	for _, want := range []string{"followers: 90", "regions: 3", "central egress per promote (bundles): ", "time to serve p99 (s): "} {
		if !strings.Contains(out.String(), "\n"+want) {
			t.Errorf("the harness's output lacks the line %q", want)
		}
	}
}
