// Package capacity turns what make bench and make scale measured on one
// machine into a deployment's fleet and budgets: edges per region, their
// memory, registry replicas, Consul servers, S3 requests and egress per
// promote and per month, and how long a promote takes to reach every edge.
// Every figure names the measurement (or the assumption) it comes from;
// docs/CAPACITY.md explains the model. sentctl capacity prints it.
package capacity

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Bench is make bench's figures of one edge (bench -json).
type Bench struct {
	Source       string  `json:"source"`
	Date         string  `json:"date"`
	EdgeRPS      float64 `json:"edge_rps"`
	Cores        int     `json:"cores"`
	EdgeRSSBytes int64   `json:"edge_rss_bytes"`
}

// Scale is make scale's figures (bench/scale -json).
type Scale struct {
	Regions         int        `json:"regions"`
	EdgesPerRegion  int        `json:"edges_per_region"`
	BundleBytes     int64      `json:"bundle_bytes"`
	RegistryBaseRSS int64      `json:"registry_base_rss_bytes"`
	Promotes        []ScaleRow `json:"promotes"`
}

// ScaleRow is one promote of make scale.
type ScaleRow struct {
	Followers     int     `json:"followers"`
	Seconds       float64 `json:"seconds"`
	P99           float64 `json:"time_to_serve_p99_s"`
	CentralEgress float64 `json:"central_egress_bundles"`
	BucketEgress  float64 `json:"bucket_egress_bundles"`
	S3Requests    float64 `json:"s3_requests"`
	RegistryCPU   float64 `json:"registry_cpu_seconds"`
	RegistryRSS   int64   `json:"registry_rss_bytes"`
	ConsulQueries int64   `json:"consul_queries"`
	Resolves      float64 `json:"resolves_per_follower"`
}

// Target is the deployment to size.
type Target struct {
	RPS              float64 // requests/s at peak, all regions together
	Regions          int
	ModelMiB         float64 // the artifact's size
	PromotesPerMonth float64
	EdgeCores        int     // cores per edge (default: the bench machine's)
	Utilisation      float64 // of an edge's measured capacity at peak (default 0.6)
	SurviveRegion    bool    // a region's traffic can move to the others
	BlobSlots        int     // each edge's -blob-slots (default 4)
	RegistryReplicas int     // at least (default 2)
	WatchesPerToken  int     // long-polls one token may hold on a replica (the registry's MaxWatchesPerToken, 4096)
}

// Line is one figure of the plan and where it comes from.
type Line struct {
	Name, Value, Source string
}

//go:embed measured/bench.json
var committedBench []byte

//go:embed measured/scale.json
var committedScale []byte

// Committed returns the measurements committed with this build
// (internal/capacity/measured, from make bench and make scale).
func Committed() (Bench, Scale) {
	var b Bench
	var s Scale
	_ = json.Unmarshal(committedBench, &b) // checked by the package's test
	_ = json.Unmarshal(committedScale, &s)
	return b, s
}

// Load reads a JSON measurement file into v.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read measurements: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("cannot read measurements %s: %w", path, err)
	}
	return nil
}

// Plan sizes t from the measurements.
func Plan(b Bench, s Scale, t Target) ([]Line, error) {
	if err := check(b, s, &t); err != nil {
		return nil, err
	}
	big := s.Promotes[len(s.Promotes)-1]
	var out []Line
	add := func(name, source, format string, args ...any) {
		out = append(out, Line{Name: name, Value: fmt.Sprintf(format, args...), Source: source})
	}
	bench := fmt.Sprintf("make bench %s: %.0f req/s on %d cores, load generator on the same cores", b.Date, b.EdgeRPS, b.Cores)
	scale := fmt.Sprintf("make scale: %d followers + %d edges over %d regions, %.0f MiB artifact",
		big.Followers, s.EdgesPerRegion*s.Regions, s.Regions, float64(s.BundleBytes)/(1<<20))

	perCore := b.EdgeRPS / float64(b.Cores)
	add("edge requests/s per core", bench, "%.0f (a floor: the load generator shared the cores)", perCore)
	peak := t.RPS / float64(t.Regions)
	peakSource := "assumption: traffic spread evenly over the regions"
	if t.SurviveRegion && t.Regions > 1 {
		peak *= float64(t.Regions) / float64(t.Regions-1)
		peakSource = "assumption: a lost region's traffic spreads evenly over the others"
	}
	add("peak requests/s per region", peakSource, "%.0f", peak)
	perEdge := perCore * float64(t.EdgeCores) * t.Utilisation
	edges := max(2, int(math.Ceil(peak/perEdge)))
	add("edges per region", "peak / (per core × cores per edge × utilisation); at least 2", "%d (%d cores each, %.0f%% of %.0f req/s)",
		edges, t.EdgeCores, 100*t.Utilisation, perCore*float64(t.EdgeCores))
	fleet := edges * t.Regions
	add("edges in all", "edges per region × regions", "%d", fleet)
	edgeMiB := float64(b.EdgeRSSBytes)/(1<<20) + 2*t.ModelMiB
	add("memory per edge", "bench RSS + 2 × the model (old and new are both held during a swap)", "%.0f MiB", edgeMiB)

	watchMiB := math.Max(0, float64(big.RegistryRSS-s.RegistryBaseRSS)/(1<<20)/float64(big.Followers)*1000)
	cpuPerK := big.RegistryCPU / float64(big.Followers+s.EdgesPerRegion*s.Regions) * 1000
	replicas := max(t.RegistryReplicas, int(math.Ceil(float64(fleet)/float64(t.WatchesPerToken))))
	add("registry replicas", fmt.Sprintf("%d long-polls per token and replica at most (the registry's limit); at least %d", t.WatchesPerToken, t.RegistryReplicas), "%d", replicas)
	add("registry memory for long-polls", scale, "%.1f MiB per 1,000 edges (%.0f MiB for the fleet, over %d MiB of base)",
		watchMiB, watchMiB*float64(fleet)/1000, s.RegistryBaseRSS>>20)
	add("registry CPU per promote", scale, "%.2f CPU-seconds per 1,000 edges (%.1f for the fleet)", cpuPerK, cpuPerK*float64(fleet)/1000)

	consulServers := 3
	if edges > 500 {
		consulServers = 5
	}
	add("Consul servers per datacenter", "Consul's guidance: 3 tolerate one failure, 5 two; 5 past a few hundred agents", "%d", consulServers)
	queriesPerEdge := float64(big.ConsulQueries) / float64(big.Followers)
	add("Consul queries per promote", scale, "%.1f per edge, %.0f per datacenter (to the local agents; their cache makes it one blocking query per agent to the servers)",
		queriesPerEdge, queriesPerEdge*float64(edges))

	egressPerRegion := big.CentralEgress / float64(s.Regions)
	bucketPerRegion := big.BucketEgress / float64(s.Regions)
	add("central egress per promote", scale, "%.2f artifacts per region: %.0f MiB (%.2f GiB) for %d regions",
		egressPerRegion, egressPerRegion*t.ModelMiB*float64(t.Regions), egressPerRegion*t.ModelMiB*float64(t.Regions)/1024, t.Regions)
	add("bucket egress per promote", scale, "%.2f artifacts per region: %.2f GiB", bucketPerRegion, bucketPerRegion*t.ModelMiB*float64(t.Regions)/1024)
	add("S3 requests per promote", scale, "%.0f (reads once per revision and region per replica, whatever the fleet)", big.S3Requests)
	month := t.PromotesPerMonth
	pollPerMonth := 5.0 * 86400 * 30 * float64(replicas) // WatchPoll 200 ms per watched channel and replica
	add("per month", fmt.Sprintf("%.0f promotes; each replica lists a watched channel every 200 ms", month),
		"%.1f GiB central egress, %.0f S3 requests for promotes + %.1f M for the watch",
		month*egressPerRegion*t.ModelMiB*float64(t.Regions)/1024, month*big.S3Requests, pollPerMonth/1e6)

	// Spreading in a region: measured upload rate per slot; in a fleet
	// every edge uploads once it holds the artifact, so holders grow by
	// (1 + slots) per round.
	moved := float64(big.Followers) * float64(s.BundleBytes)
	perSlot := moved / big.Seconds / float64(s.Regions*s.EdgesPerRegion*t.BlobSlots)
	round := t.ModelMiB * (1 << 20) / perSlot
	rounds := math.Ceil(math.Log(float64(edges)) / math.Log(float64(1+t.BlobSlots)))
	add("upload rate per blob slot", scale+fmt.Sprintf(", %.0f s for the largest promote", big.Seconds), "%.1f MiB/s (one machine's two cores for everyone: a floor)", perSlot/(1<<20))
	add("time for a promote to reach every edge", "seed + rounds × the artifact at one slot's rate; rounds = log base (1 + slots) of the edges per region",
		"about %.0f s (%.0f rounds of %.0f s, plus the seeder's copy)", (rounds+1)*round, rounds, round)
	return out, nil
}

func check(b Bench, s Scale, t *Target) error {
	switch {
	case b.EdgeRPS <= 0 || b.Cores <= 0:
		return errors.New("the bench figures have no edge requests/s: run make bench")
	case len(s.Promotes) == 0 || s.Regions <= 0 || s.BundleBytes <= 0:
		return errors.New("the scale figures have no promote: run make scale")
	case t.RPS <= 0 || t.Regions <= 0 || t.ModelMiB <= 0:
		return errors.New("the target needs requests/s, regions and a model size above 0")
	case t.Utilisation < 0 || t.Utilisation > 1:
		return errors.New("utilisation is a share of capacity, 0 to 1")
	}
	if s.Promotes[len(s.Promotes)-1].Followers <= 0 || s.Promotes[len(s.Promotes)-1].Seconds <= 0 {
		return errors.New("the scale figures' largest promote has no followers")
	}
	if t.EdgeCores <= 0 {
		t.EdgeCores = b.Cores
	}
	if t.Utilisation == 0 {
		t.Utilisation = 0.6
	}
	if t.BlobSlots <= 0 {
		t.BlobSlots = 4
	}
	if t.RegistryReplicas <= 0 {
		t.RegistryReplicas = 2
	}
	if t.WatchesPerToken <= 0 {
		t.WatchesPerToken = 4096
	}
	return nil
}

// Print writes the plan as aligned lines, each with its source.
func Print(w io.Writer, lines []Line) {
	for _, l := range lines {
		fmt.Fprintf(w, "%-40s %s\n%-40s   from: %s\n", l.Name+":", l.Value, "", l.Source)
	}
}
