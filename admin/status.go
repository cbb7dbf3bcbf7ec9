package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func (ad *admin) status(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	name := r.PathValue("name")
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		channel = ad.cfg.ProductionChannels[0]
	}
	if ad.cfg.Consul == nil && len(ad.cfg.Edges) == 0 {
		return httperr.New(http.StatusServiceUnavailable, "%s", errNoDiscovery.Error())
	}
	c, err := ad.reg.GetChannel(r.Context(), name, channel)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if ad.cfg.Consul == nil {
		registry.WriteJSON(w, http.StatusOK, ad.staticStatus(ctx, c))
		return nil
	}
	registry.WriteJSON(w, http.StatusOK, ad.rolloutStatus(ctx, c))
	return nil
}

// staticStatus asks each edge of the registry's own list (-edges, when
// there is no Consul) what it serves, through its /health/ready.
func (ad *admin) staticStatus(ctx context.Context, c wire.Channel) wire.Status {
	st := wire.Status{Model: c.Model, Channel: c.Channel, Revision: c.Revision, Converged: true}
	results := make([]wire.InstanceStatus, len(ad.cfg.Edges))
	serves := make([]bool, len(ad.cfg.Edges))
	var wg sync.WaitGroup
	for i, e := range ad.cfg.Edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], serves[i] = ad.probe(ctx, e.ID, e.URL, c.Model)
		}()
	}
	wg.Wait()
	byRegion := map[string]*wire.RegionStatus{}
	for i, e := range ad.cfg.Edges {
		if serves[i] {
			addInstance(byRegion, c, e.Region, "-", results[i])
		}
	}
	return withRegions(st, byRegion)
}

// addInstance files an edge under its region, marking whether it serves
// the region's target; a passing edge that does not keeps the region
// from converging.
func addInstance(byRegion map[string]*wire.RegionStatus, c wire.Channel, region, datacenter string, is wire.InstanceStatus) {
	rs := byRegion[region]
	if rs == nil {
		rs = &wire.RegionStatus{Region: region, Datacenter: datacenter, Expected: c.Resolve(region), Converged: true}
		byRegion[region] = rs
	}
	is.Current = is.Version == rs.Expected
	if is.Health == api.HealthPassing && !is.Current {
		rs.Converged = false
	}
	rs.Instances = append(rs.Instances, is)
}

// withRegions puts the regions into st in name order; st converges when
// every region does.
func withRegions(st wire.Status, byRegion map[string]*wire.RegionStatus) wire.Status {
	for _, rs := range byRegion {
		st.Regions = append(st.Regions, *rs)
		st.Converged = st.Converged && rs.Converged
	}
	sort.Slice(st.Regions, func(i, j int) bool { return st.Regions[i].Region < st.Regions[j].Region })
	return st
}

// probe reads one edge's /health/ready: passing with the version of model
// it serves, or critical. serves is false when a ready edge does not serve
// model at all; an edge that is not ready is counted, critical.
func (ad *admin) probe(ctx context.Context, id, base, model string) (is wire.InstanceStatus, serves bool) {
	is = wire.InstanceStatus{ID: id, Address: strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://"), Health: api.HealthCritical}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health/ready", nil)
	if err != nil {
		return is, true
	}
	resp, err := ad.cfg.EdgeClient.Do(req)
	if err != nil {
		return is, true
	}
	defer resp.Body.Close()
	type served struct{ Name, Model, Version, Digest string }
	var ready struct {
		served
		Models []served // an edge older than several models has none
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ready) != nil {
		return is, true
	}
	if len(ready.Models) == 0 {
		ready.Models = []served{{Name: ready.Model, Version: ready.Version, Digest: ready.Digest}}
	}
	for _, m := range ready.Models {
		if m.Name == model {
			is.Health, is.Version, is.Digest = api.HealthPassing, m.Version, m.Digest
			return is, true
		}
	}
	return is, false
}

func (ad *admin) rolloutStatus(ctx context.Context, c wire.Channel) wire.Status {
	st := wire.Status{Model: c.Model, Channel: c.Channel, Revision: c.Revision, Converged: true}
	byRegion := map[string]*wire.RegionStatus{}
	dcs := ad.cfg.Datacenters
	if len(dcs) == 0 {
		all, err := ad.cfg.Consul.Catalog().Datacenters()
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("cannot list datacenters: %v", err))
			st.Converged = false
		}
		dcs = all
	}
	for _, dc := range dcs {
		opts := (&api.QueryOptions{Datacenter: dc}).WithContext(ctx)
		entries, _, err := ad.cfg.Consul.Health().Service(ad.cfg.EdgeService, "", false, opts)
		if err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", dc, errors.Unwrap(err)))
			st.Converged = false
			continue
		}
		for _, e := range entries {
			in := discovery.InstanceFrom(dc, e)
			served, ok := discovery.ServedFrom(in.Meta, c.Model, c.Channel)
			if !ok {
				continue
			}
			addInstance(byRegion, c, in.Meta[discovery.MetaRegion], dc, wire.InstanceStatus{ID: in.ID, Address: in.HostPort(), Health: in.Status,
				Version: served.Version, Digest: served.Digest})
		}
	}
	return withRegions(st, byRegion)
}
