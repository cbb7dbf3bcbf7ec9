// Command scale is the distribution harness (make scale): the registry on
// the S3 server, one Consul datacenter per region, real edge processes in
// every region with their blob servers, and up to thousands of simulated
// followers: goroutines that run the edge's own watch and fetch code
// (edge.Watcher, distrib.Fetcher: long-poll, peers from Consul, resumable
// download, digest and signature check) without serving predictions or
// keeping the bytes, so that the registry, S3 and Consul see a real fleet.
// For each fleet size it promotes a new signed artifact and prints how long
// every edge and follower took to hold it, what it cost the registry, the
// bucket and Consul, and the planned and unplanned 5xx. docs/CAPACITY.md
// reads its figures.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is one run of the harness.
type config struct {
	BinDir    string   // edge and registry binaries; built when empty
	Dir       string   // state: logs, caches, keys
	Regions   []string // one Consul datacenter each
	Edges     int      // real edge processes per region
	Followers []int    // fleet sizes, one promote each, growing
	Bits      int      // the artifact has 2^Bits buckets: 24 is 64 MiB
	Streams   int      // the registry's -max-blob-streams
	Slots     int      // each edge's -blob-slots
	Timeout   time.Duration
	JSON      string // write the figures here too (sentctl capacity reads them)
}

func main() {
	var cfg config
	var regions, followers string
	flag.StringVar(&cfg.BinDir, "bin", "", "directory with the edge and registry binaries (default: build them)")
	flag.StringVar(&cfg.Dir, "dir", "", "state directory (default: a temporary one, removed at the end)")
	flag.StringVar(&regions, "regions", "us-east,eu-west,ap-south", "regions, one Consul datacenter each")
	flag.IntVar(&cfg.Edges, "edges", 10, "edge processes per region")
	flag.StringVar(&followers, "followers", "250,500,1000", "fleet sizes of simulated followers, one promote each")
	flag.IntVar(&cfg.Bits, "bits", 24, "artifact size: 2^bits buckets of 4 bytes (24: 64 MiB, 26: 256 MiB)")
	flag.IntVar(&cfg.Streams, "registry-streams", 64, "the registry's -max-blob-streams")
	flag.IntVar(&cfg.Slots, "blob-slots", 4, "each edge's -blob-slots")
	flag.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "longest a promote may take to reach everyone")
	flag.StringVar(&cfg.JSON, "json", "", "also write the figures as JSON to this file")
	flag.Parse()
	cfg.Regions = strings.Split(regions, ",")
	for _, f := range strings.Split(followers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "scale: -followers %q: want counts separated by commas\n", followers)
			os.Exit(2)
		}
		cfg.Followers = append(cfg.Followers, n)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	report, err := run(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if cfg.JSON != "" {
		if err := report.write(cfg.JSON); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
	}
}
