package distrib

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/discovery"
)

// ServiceSuffix names the blob servers' Consul service after the edges':
// sentiment-edge's blob servers are sentiment-edge-blobs. A service of its
// own keeps the peer lookups of a large fleet small (blob servers only)
// and the edges' own health answers untouched.
const ServiceSuffix = "-blobs"

// Consul finds a region's peers among the blob servers registered in the
// local datacenter. Lookups are answered by the local agent from its cache
// (a blocking query per agent to the servers, whatever the number of
// fetches), and allow stale reads.
type Consul struct {
	Client  *api.Client
	Service string // the blob servers' service, e.g. sentiment-edge-blobs
	Region  string
	// Self is this edge's blob server's service ID: the one that may be
	// elected seeder. Empty for a fetcher that serves nobody.
	Self string
	// Scheme ("http" or "https") and HTTP reach the peers.
	Scheme string
	HTTP   *http.Client
}

// Find lists the region's blob servers holding digest and elects the
// seeder among the passing ones (all of them when none passes yet: a cold
// fleet).
func (c *Consul) Find(ctx context.Context, digest string, index uint64, wait time.Duration) (Holders, error) {
	q := (&api.QueryOptions{AllowStale: true, UseCache: true, WaitIndex: index, WaitTime: wait}).WithContext(ctx)
	entries, meta, err := c.Client.Health().Service(c.Service, c.Region, false, q)
	if err != nil {
		return Holders{}, fmt.Errorf("cannot list %s in consul: %w", c.Service, err)
	}
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	var all, passing []string
	h := Holders{Index: meta.LastIndex}
	for _, e := range entries {
		in := discovery.InstanceFrom("", e)
		if in.Meta[discovery.MetaRegion] != c.Region {
			continue
		}
		all = append(all, in.ID)
		if in.Passing() {
			passing = append(passing, in.ID)
		}
		held := slices.Contains(strings.Fields(in.Meta[discovery.MetaArtifacts]), hexDigest)
		if held && in.ID != c.Self && in.Status != api.HealthCritical {
			h.Peers = append(h.Peers, Peer{Addr: in.HostPort(), Scheme: c.Scheme, HTTP: c.HTTP})
		}
	}
	h.Sources = len(all)
	candidates := passing
	if len(candidates) == 0 {
		candidates = all
	}
	h.Seed = len(candidates) == 0 || c.Self != "" && Seeder(digest, candidates) == c.Self
	return h, nil
}

// Seeder is the instance among ids that fetches digest from the registry
// for its region: the highest rendezvous score, so every instance that
// sees the same list elects the same one, and a list that loses or gains
// an instance moves few artifacts' seeders.
func Seeder(digest string, ids []string) string {
	var best string
	var bestScore uint64
	for _, id := range ids {
		sum := sha256.Sum256([]byte(digest + "\x00" + id))
		if s := binary.BigEndian.Uint64(sum[:8]); best == "" || s > bestScore {
			best, bestScore = id, s
		}
	}
	return best
}
