package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/rig"
)

// backend is what the registry stores into and how edges are discovered:
// a directory and static probing, or S3 and Consul.
type backend struct {
	registryArgs []string
	registryEnv  []string
	edgeArgs     func(region string) []string
	geoArgs      []string
	urls         [][2]string // name, URL: for the banner
	stop         func()
}

func startBackend(cfg Config) (*backend, error) {
	if cfg.Real {
		return startReal(cfg)
	}
	var static, staticGRPC []string
	for i, region := range cfg.Regions {
		static = append(static, fmt.Sprintf("%s=127.0.0.1:%d", region, cfg.EdgePort+i))
		staticGRPC = append(staticGRPC, fmt.Sprintf("%s=127.0.0.1:%d", region, cfg.EdgeGRPCPort+i))
	}
	return &backend{
		registryArgs: []string{"-store", "dir:" + filepath.Join(cfg.StateDir, "registry")},
		edgeArgs:     func(string) []string { return nil },
		geoArgs:      []string{"-static", strings.Join(static, ","), "-static-grpc", strings.Join(staticGRPC, ",")},
		stop:         func() {},
	}, nil
}

// startReal starts one Consul datacenter per region (named after it),
// joined over WAN, and the S3 server with a bucket for the registry, all
// under the state directory. Consul runs in dev mode: its catalog starts
// empty on every run, while S3 data and edge caches persist.
func startReal(cfg Config) (*backend, error) {
	dir, err := filepath.Abs(filepath.Join(cfg.StateDir, "services"))
	if err != nil {
		return nil, err
	}
	fmt.Printf("starting %d Consul datacenters and the S3 server…\n", len(cfg.Regions))
	consul, err := rig.StartConsul(dir, cfg.Regions...)
	if err != nil {
		return nil, fmt.Errorf("cannot start Consul (run `make tools` first): %w", err)
	}
	s3srv, err := rig.StartS3(dir)
	if err != nil {
		consul.Stop()
		return nil, fmt.Errorf("cannot start the S3 server (run `make tools` first): %w", err)
	}
	b := &backend{stop: func() { s3srv.Stop(); consul.Stop() }}
	const bucket = "sentiment-registry"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = s3srv.EnsureBucket(ctx, bucket)
	cancel()
	if err != nil {
		b.stop()
		return nil, err
	}
	first := consul.Agent(cfg.Regions[0]).HTTPAddr()
	var dcs []string
	for _, region := range cfg.Regions {
		dcs = append(dcs, region+"="+region)
		b.urls = append(b.urls, [2]string{"consul " + region, "http://" + consul.Agent(region).HTTPAddr() + "/ui/"})
	}
	b.urls = append(b.urls, [2]string{"s3", "http://" + s3srv.Endpoint() + " (bucket " + bucket + ")"})
	b.registryArgs = []string{"-store", "s3://" + bucket, "-s3-endpoint", s3srv.Endpoint(), "-consul", first}
	b.registryEnv = []string{"REGISTRY_S3_ACCESS_KEY=" + s3srv.AccessKey, "REGISTRY_S3_SECRET_KEY=" + s3srv.SecretKey}
	// Each edge's blob server registers in its datacenter: a region's
	// edges fetch a new model from one another (docs/CAPACITY.md).
	b.edgeArgs = func(region string) []string {
		return []string{"-consul", consul.Agent(region).HTTPAddr(), "-blob-listen", "127.0.0.1:0"}
	}
	b.geoArgs = []string{"-consul", first, "-datacenters", strings.Join(dcs, ",")}
	return b, nil
}
