package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/geo/regions"
	"github.com/sentimentpro/sentiment/internal/config"
)

// runDNSQuery creates, in every region's Consul datacenter, a prepared
// query that DNS-based clients resolve as <name>.query.consul: the passing
// edges of the local datacenter, else those of the other datacenters,
// nearest region first (the geo router's order).
func runDNSQuery(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dns-query", stderr)
	consulAddr := fs.String("consul", "127.0.0.1:8500", "address of any Consul agent on the WAN")
	token := fs.String("consul-token", "", "Consul ACL token (needs query write)")
	dcs := fs.String("datacenters", "", "region=datacenter pairs, e.g. us-east=dc-us,eu-west=dc-eu")
	regionsFlag := fs.String("regions", regions.Default, "regions and their locations: name=lat,lon;…")
	name := fs.String("name", "sentiment", "query name: clients resolve <name>.query.consul")
	service := fs.String("service", "sentiment-edge", "edges' Consul service name")
	nearestN := fs.Int("nearest-n", 0, "also try this many nearest datacenters by Consul's network coordinates, before the fixed list")
	ttl := fs.String("ttl", "5s", "DNS answer TTL")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "datacenters"); err != nil {
		return err
	}
	byRegion, err := config.Pairs(*dcs)
	if err != nil {
		return usageError{fmt.Errorf("--datacenters %w", err)}
	}
	rs, err := regions.Parse(*regionsFlag)
	if err != nil {
		return usageError{fmt.Errorf("--regions: %w", err)}
	}
	for region := range byRegion {
		if !slices.ContainsFunc(rs, func(r regions.Region) bool { return r.Name == region }) {
			return usageError{fmt.Errorf("region %q has no location in --regions", region)}
		}
	}
	client, err := discovery.NewClient(*consulAddr, *token)
	if err != nil {
		return err
	}
	for _, r := range rs {
		dc, ok := byRegion[r.Name]
		if !ok {
			continue
		}
		order := regions.ByDistance(rs, r.Lat, r.Lon, r.Name)
		var failover []string
		for _, other := range order[1:] {
			if odc, ok := byRegion[other]; ok {
				failover = append(failover, odc)
			}
		}
		q := discovery.FailoverQuery{Name: *name, Service: *service, NearestN: *nearestN, Datacenters: failover, TTL: *ttl}
		id, err := discovery.UpsertQuery(client, dc, q)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%s): query %s (%s), failover %v\n", dc, r.Name, *name, id, failover)
	}
	return nil
}
