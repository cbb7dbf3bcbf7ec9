package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is the harness's figures: one row per promote.
type report struct {
	Regions     int   `json:"regions"`
	EdgesPerReg int   `json:"edges_per_region"`
	BundleBytes int64 `json:"bundle_bytes"`
	// RegistryBaseRSS is the registry's RSS with the edges and no
	// followers.
	RegistryBaseRSS int64 `json:"registry_base_rss_bytes"`
	Rows            []row `json:"promotes"`
}

// row is one promote to a fleet of Followers simulated followers and the
// real edges.
type row struct {
	Followers int                  `json:"followers"`
	Seconds   float64              `json:"seconds"` // promote to the last arrival
	Regions   map[string]quantiles `json:"time_to_serve_s"`
	P99       float64              `json:"time_to_serve_p99_s"` // everyone
	// Central egress: bytes out of the registry and out of the bucket,
	// in bundles.
	CentralEgress float64 `json:"central_egress_bundles"`
	BucketEgress  float64 `json:"bucket_egress_bundles"`
	S3Requests    float64 `json:"s3_requests"`
	RegistryCPU   float64 `json:"registry_cpu_seconds"`
	RegistryRSS   int64   `json:"registry_rss_bytes"`
	ConsulQPS     float64 `json:"consul_queries_per_second"`
	ConsulQueries int64   `json:"consul_queries"`
	PeerRequests  int64   `json:"peer_requests"`
	// Resolves per follower: the long-poll's wake-ups for one change.
	Resolves  float64 `json:"resolves_per_follower"`
	Planned   int64   `json:"planned_503"`
	Unplanned int64   `json:"unplanned_5xx"`
}

type quantiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (r *report) write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// snapshot is what a promote's cost is measured from.
type snapshot struct {
	registry map[string]float64
	consul   int64
	peer     int64
	resolves int64
	planned  int64
	unplan   int64
}

func (h *harness) snapshot() (snapshot, error) {
	m, err := scrape(h.regURL + "/metrics")
	if err != nil {
		return snapshot{}, err
	}
	s := h.fleet.stats
	return snapshot{registry: m, consul: s.consul.Load(), peer: s.peer.Load(), resolves: s.resolves.Load(),
		planned: s.planned.Load(), unplan: s.unplanned.Load()}, nil
}

func (h *harness) measure() (*report, error) {
	rep := &report{Regions: len(h.cfg.Regions), EdgesPerReg: h.cfg.Edges}
	v, err := h.publish(0)
	if err != nil {
		return nil, err
	}
	if err := h.promote(v.Version); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	err = h.waitEdges(ctx, v.Digest, time.Now(), func(string, time.Duration) {})
	cancel()
	if err != nil {
		return nil, err
	}
	rep.RegistryBaseRSS = rss(h.registry.PID())
	fmt.Fprintf(h.out, "scale: %d regions × %d edges, artifact %d MiB, registry -max-blob-streams %d, edge -blob-slots %d\n",
		len(h.cfg.Regions), h.cfg.Edges, v.Size>>20, h.cfg.Streams, h.cfg.Slots)
	fmt.Fprintf(h.out, "%9s %8s %9s %9s %8s %8s %7s %9s %9s %9s %8s %6s %6s\n", "followers", "seconds", "p50 (s)", "p99 (s)",
		"egress", "bucket", "s3 req", "reg cpu", "reg rss", "consul/s", "resolves", "503", "5xx")
	current := v.Digest
	for i, n := range h.cfg.Followers {
		r, digest, err := h.promoteTo(i+1, n, current)
		if err != nil {
			return rep, err
		}
		rep.BundleBytes = r.bundle
		rep.Rows = append(rep.Rows, r.row)
		current = digest
		all := r.row.Regions["all"]
		fmt.Fprintf(h.out, "%9d %8.1f %9.2f %9.2f %8.2f %8.2f %7.0f %9.2f %8dM %9.0f %8.2f %6d %6d\n", n, r.row.Seconds, all.P50, all.P99,
			r.row.CentralEgress, r.row.BucketEgress, r.row.S3Requests, r.row.RegistryCPU, r.row.RegistryRSS>>20,
			r.row.ConsulQPS, r.row.Resolves, r.row.Planned, r.row.Unplanned)
	}
	h.printSummary(rep)
	return rep, nil
}

type promoteResult struct {
	row    row
	bundle int64
}

// promoteTo grows the fleet to n followers holding current, promotes
// version i, and measures until every edge and follower holds it.
func (h *harness) promoteTo(i, n int, current string) (promoteResult, string, error) {
	h.fleet.grow(n, current)
	// Every follower's first resolve returns at once; then it waits on
	// the long-poll.
	deadline := time.Now().Add(h.cfg.Timeout)
	for h.fleet.stats.resolves.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	v, err := h.publish(i)
	if err != nil {
		return promoteResult{}, "", err
	}
	before, err := h.snapshot()
	if err != nil {
		return promoteResult{}, "", err
	}
	start := time.Now()
	if err := h.promote(v.Version); err != nil {
		return promoteResult{}, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	times := map[string][]float64{}
	edgesDone := make(chan error, 1)
	var edgeTimes []arrival
	go func() {
		edgesDone <- h.waitEdges(ctx, v.Digest, start, func(region string, d time.Duration) {
			edgeTimes = append(edgeTimes, arrival{region: region, at: start.Add(d)})
		})
	}()
	for len(h.fleet.arrived(v.Digest)) < n && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-edgesDone; err != nil {
		return promoteResult{}, "", err
	}
	got := h.fleet.arrived(v.Digest)
	if len(got) < n {
		return promoteResult{}, "", fmt.Errorf("%d of %d followers hold %s after %v", len(got), n, v.Version, h.cfg.Timeout)
	}
	time.Sleep(time.Second) // the registry's counters settle after the last stream
	after, err := h.snapshot()
	if err != nil {
		return promoteResult{}, "", err
	}
	last := start
	for _, a := range append(got, edgeTimes...) {
		d := a.at.Sub(start).Seconds()
		times[a.region] = append(times[a.region], d)
		times["all"] = append(times["all"], d)
		if a.at.After(last) {
			last = a.at
		}
	}
	elapsed := last.Sub(start).Seconds()
	delta := func(name string) float64 { return sum(after.registry, name) - sum(before.registry, name) }
	size := float64(v.Size)
	r := row{Followers: n, Seconds: elapsed, Regions: map[string]quantiles{},
		CentralEgress: delta("registry_blob_bytes_out_total") / size,
		BucketEgress:  delta("store_s3_response_bytes_total") / size,
		S3Requests:    delta("store_s3_requests_total"),
		RegistryCPU:   delta("process_cpu_seconds_total"),
		RegistryRSS:   rss(h.registry.PID()),
		ConsulQueries: after.consul - before.consul,
		PeerRequests:  after.peer - before.peer,
		Resolves:      float64(after.resolves-before.resolves) / float64(max(n, 1)),
		Planned:       after.planned - before.planned,
		Unplanned:     after.unplan - before.unplan,
	}
	r.ConsulQPS = float64(r.ConsulQueries) / max(elapsed, 0.001)
	for region, ts := range times {
		r.Regions[region] = quantilesOf(ts)
	}
	r.P99 = r.Regions["all"].P99
	if r.Unplanned > 0 {
		h.fleet.stats.mu.Lock()
		fmt.Fprintf(h.out, "  unplanned 5xx, the first: %s\n", h.fleet.stats.firstUnplanned)
		h.fleet.stats.mu.Unlock()
	}
	return promoteResult{row: r, bundle: v.Size}, v.Digest, nil
}

func quantilesOf(ts []float64) quantiles {
	sort.Float64s(ts)
	q := func(p float64) float64 { return ts[min(len(ts)-1, int(p*float64(len(ts))))] }
	return quantiles{N: len(ts), P50: q(0.5), P99: q(0.99), Max: ts[len(ts)-1]}
}

func (h *harness) printSummary(rep *report) {
	if len(rep.Rows) == 0 {
		return
	}
	fmt.Fprintln(h.out)
	fmt.Fprintln(h.out, "time to serve by region, the largest fleet (s): region n p50 p99 max")
	last := rep.Rows[len(rep.Rows)-1]
	regions := make([]string, 0, len(last.Regions))
	for region := range last.Regions {
		regions = append(regions, region)
	}
	slices.Sort(regions)
	for _, region := range regions {
		q := last.Regions[region]
		fmt.Fprintf(h.out, "  %-10s %5d %6.2f %6.2f %6.2f\n", region, q.N, q.P50, q.P99, q.Max)
	}
	perK := func(x float64, n int) float64 { return x / float64(max(n, 1)) * 1000 }
	fmt.Fprintf(h.out, "registry: RSS %d MiB with the edges alone, %d MiB holding %d followers' long-polls; per 1,000 followers %.2f CPU-seconds a promote\n",
		rep.RegistryBaseRSS>>20, last.RegistryRSS>>20, last.Followers, perK(last.RegistryCPU, last.Followers))
	var curve []string
	for _, r := range rep.Rows {
		curve = append(curve, fmt.Sprintf("%d→%.1fs", r.Followers, r.P99))
	}
	fmt.Fprintf(h.out, "p99 time to serve by fleet size: %s\n", strings.Join(curve, ", "))
	fmt.Fprintf(h.out, "followers: %d\n", last.Followers)
	fmt.Fprintf(h.out, "regions: %d\n", rep.Regions)
	fmt.Fprintf(h.out, "central egress per promote (bundles): %.2f\n", last.CentralEgress)
	fmt.Fprintf(h.out, "time to serve p99 (s): %.2f\n", last.P99)
}
