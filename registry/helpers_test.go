package registry_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/s3"
)

// One S3 server serves the whole package; each test gets its own bucket.
var (
	s3Once sync.Once
	s3Srv  *testenv.S3Server
	s3Err  error
	s3Dir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if s3Srv != nil {
		s3Srv.Stop()
	}
	if s3Dir != "" {
		os.RemoveAll(s3Dir)
	}
	os.Exit(code)
}

func sharedS3(t *testing.T) *testenv.S3Server {
	t.Helper()
	if testing.Short() {
		t.Skip("real-service test: skipped in -short mode")
	}
	s3Once.Do(func() {
		s3Dir, s3Err = os.MkdirTemp("", "registry-s3-")
		if s3Err == nil {
			s3Srv, s3Err = rig.StartS3(s3Dir)
		}
	})
	if s3Err != nil {
		t.Fatal(s3Err)
	}
	return s3Srv
}

const (
	adminToken     = registrytest.AdminToken
	publisherToken = registrytest.PublisherToken
	readerToken    = registrytest.ReaderToken
	testTokens     = registrytest.Tokens
)

// harness is one registry replica (registry + admin API) over a bucket.
type harness struct {
	bucket string
	store  store.Store
	reg    *registry.Registry
	url    string
	api    *registry.API
	admin  *regclient.Client
	pub    *regclient.Client
	reader *regclient.Client
}

func newReplica(t *testing.T, srv *testenv.S3Server, bucket string, cfg registry.Config) *harness {
	t.Helper()
	st, err := s3.New(srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WatchPoll == 0 {
		cfg.WatchPoll = 100 * time.Millisecond
	}
	s := registrytest.Start(t, st, cfg, admin.Config{})
	return &harness{bucket: bucket, store: st, reg: s.Registry, url: s.URL, api: s.API, admin: s.Admin, pub: s.Publisher, reader: s.Reader}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := sharedS3(t)
	return newReplica(t, srv, testenv.NewBucket(t, srv, "reg"), registry.Config{})
}

// artifact makes a distinct tiny artifact per seed with accuracy recorded
// as its evaluation metric.
func artifact(t testing.TB, seed uint64, accuracy float64) []byte {
	return testenv.TinyArtifact(t, seed, accuracy)
}

// publish uploads data and creates name/version through c.
var publish = registrytest.Publish

func mustPromote(t testing.TB, c *regclient.Client, name, channel, version string, regions ...string) wire.Channel {
	t.Helper()
	ch, err := c.Promote(context.Background(), name, channel, wire.MoveRequest{Version: version, Regions: regions})
	if err != nil {
		t.Fatalf("promote %s/%s to %s %v: %v", name, channel, version, regions, err)
	}
	return ch
}

func resolveVersion(t testing.TB, c *regclient.Client, name, channel, region string) string {
	t.Helper()
	res, err := c.Resolve(context.Background(), name, channel, region, 0, 0)
	if err != nil {
		t.Fatalf("resolve %s/%s in %q: %v", name, channel, region, err)
	}
	return res.Version.Version
}

func versions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("v%d", i+1)
	}
	return out
}
