package distrib_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/distrib"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
)

// TestConsulFindsTheRegionsHoldersAndOneSeeder runs against a real Consul
// agent: the holders of an artifact in the region are found (not another
// region's, not the caller itself), every instance of the region elects the
// same seeder, a fetcher that serves nobody is never it, and a blocking
// lookup wakes when a peer starts to hold the artifact.
func TestConsulFindsTheRegionsHoldersAndOneSeeder(t *testing.T) {
	consul := testenv.Consul(t, "dc1").Agent("dc1").Client()
	digest := model.Digest([]byte("an artifact"))
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	const service = "sentiment-edge" + distrib.ServiceSuffix
	regs := map[string]*discovery.Registrar{}
	register := func(id, region, held string) {
		live := httptest.NewServer((&distrib.Server{Path: func(string) string { return "" }}).Handler())
		t.Cleanup(live.Close)
		host, port, _ := discovery.SplitHostPort(strings.TrimPrefix(live.URL, "http://"))
		r := discovery.NewRegistrar(consul.Agent(), discovery.Registration{ID: id, Name: service, Address: host, Port: port,
			Tags: []string{region}, Meta: map[string]string{discovery.MetaRegion: region, discovery.MetaArtifacts: held},
			CheckURL: live.URL + "/health/live", CheckInterval: 200 * time.Millisecond}, func() bool { return true }, nil)
		if err := r.Update(nil); err != nil {
			t.Fatal(err)
		}
		regs[id] = r
	}
	register("eu-a", "eu", "")
	register("eu-b", "eu", hexDigest)
	register("eu-c", "eu", "0000 "+strings.Repeat("1", 64))
	register("us-a", "us", hexDigest)
	finder := func(self string) *distrib.Consul {
		return &distrib.Consul{Client: consul, Service: service, Region: "eu", Self: self, Scheme: "http"}
	}
	ctx := context.Background()
	testenv.Eventually(t, 20*time.Second, "all of eu passing", func() error {
		h, err := finder("").Find(ctx, digest, 0, 0)
		if err == nil && h.Sources == 3 && h.Seed {
			return errNot("a follower was elected")
		}
		entries, _, err := consul.Health().Service(service, "eu", true, nil)
		if err == nil && len(entries) != 3 {
			return errNot("passing")
		}
		return err
	})
	seeders := 0
	for _, self := range []string{"eu-a", "eu-b", "eu-c"} {
		h, err := finder(self).Find(ctx, digest, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if h.Sources != 3 {
			t.Errorf("%s sees %d blob servers in eu, want 3", self, h.Sources)
		}
		wantPeers := 1
		if self == "eu-b" {
			wantPeers = 0 // itself
		}
		if len(h.Peers) != wantPeers {
			t.Errorf("%s sees holders %v, want %d (eu-b only, never itself or us-a)", self, h.Peers, wantPeers)
		}
		if h.Seed {
			seeders++
			if want := distrib.Seeder(digest, []string{"eu-a", "eu-b", "eu-c"}); want != self {
				t.Errorf("%s says it seeds; the rendezvous says %s", self, want)
			}
		}
	}
	if seeders != 1 {
		t.Errorf("%d seeders elected in eu, want exactly 1", seeders)
	}

	// A blocking lookup wakes when eu-a comes to hold the artifact.
	h, err := finder("eu-c").Find(ctx, digest, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		regs["eu-a"].Update(func(r *discovery.Registration) { r.Meta[discovery.MetaArtifacts] = hexDigest })
	}()
	deadline := time.Now().Add(20 * time.Second)
	for len(h.Peers) < 2 && time.Now().Before(deadline) {
		if h, err = finder("eu-c").Find(ctx, digest, h.Index, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Peers) != 2 {
		t.Fatalf("after eu-a took the artifact, eu-c sees holders %v, want eu-a and eu-b", h.Peers)
	}
}

type errNot string

func (e errNot) Error() string { return "not yet: " + string(e) }
