package edge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/s3"
)

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// rig is a registry on the real S3 server, with admin and reader clients.
type rig struct {
	s3     *testenv.S3Server
	bucket string
	store  store.Store
	url    string
	admin  *regclient.Client
	reader *regclient.Client
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, srv, "edge")
	st, err := s3.New(srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, registry.Config{WatchPoll: 100 * time.Millisecond}, admin.Config{})
	reg.Reader.HTTP = &http.Client{Timeout: 30 * time.Second}
	return &rig{s3: srv, bucket: bucket, store: st, url: reg.URL, admin: reg.Admin, reader: reg.Reader}
}

func artifact(t testing.TB, seed uint64) []byte { return testenv.TinyArtifact(t, seed, 0) }

// publish uploads and names a version of "demo", signed by priv when given.
func (r *rig) publish(t testing.TB, version string, data []byte, priv ed25519.PrivateKey) {
	t.Helper()
	r.publishModel(t, "demo", version, data, priv)
}

// publishModel uploads and names a version of name.
func (r *rig) publishModel(t testing.TB, name, version string, data []byte, priv ed25519.PrivateKey) {
	t.Helper()
	nv := wire.NewVersion{Digest: model.Digest(data)}
	if priv != nil {
		sig, _ := model.Sign(priv, nv.Digest)
		nv.Signature = &sig
	}
	if _, err := r.admin.Publish(context.Background(), name, version, bytes.NewReader(data), int64(len(data)), nv); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) promote(t testing.TB, version string) time.Time {
	t.Helper()
	return r.promoteModel(t, "demo", "production", version)
}

// promoteModel moves name's channel to version, everywhere.
func (r *rig) promoteModel(t testing.TB, name, channel, version string) time.Time {
	t.Helper()
	if _, err := r.admin.Promote(context.Background(), name, channel, wire.MoveRequest{Version: version}); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// startEdge runs an edge server with a syncer on a real loopback port.
func startEdge(t *testing.T, r *rig, cfg edge.SyncConfig) (*edge.Server, string) {
	t.Helper()
	srv := edge.NewServer(edge.Config{Region: "eu-west", Models: []string{"demo"}, Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := srv.FastHTTPServer()
	go fs.Serve(ln)
	cfg.Client, cfg.Model, cfg.Channel, cfg.Region, cfg.Logger = r.reader, "demo", "production", "eu-west", quiet
	cfg.Wait = 10 * time.Second
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	sy := edge.NewSyncer(srv, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sy.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; fs.Shutdown(); srv.Close() })
	return srv, "http://" + ln.Addr().String()
}

func waitServing(t *testing.T, srv *edge.Server, version string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if sv := srv.Current(); sv != nil && sv.Version == version {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cur := "nothing"
	if sv := srv.Current(); sv != nil {
		cur = sv.Version
	}
	t.Fatalf("edge not serving %s within %v (serving %s)", version, within, cur)
	return 0
}

// TestPromoteIsServedUnderLoad: a promote reaches the edge within 2 s while
// concurrent requests run through the swap with no error.
func TestPromoteIsServedUnderLoad(t *testing.T) {
	r := newRig(t)
	r.publish(t, "v1", artifact(t, 1), nil)
	r.publish(t, "v2", artifact(t, 2), nil)
	r.promote(t, "v1")
	srv, url := startEdge(t, r, edge.SyncConfig{})
	waitServing(t, srv, "v1", 10*time.Second)

	versions := map[string]int{}
	l := testenv.StartLoad(testenv.LoadConfig{URL: url + "/v1/predict", Workers: 8,
		Observe: func(_ int64, resp *fasthttp.Response, err error) { // one at a time
			var out struct{ Version string }
			if err == nil && json.Unmarshal(resp.Body(), &out) == nil {
				versions[out.Version]++
			}
		}})
	time.Sleep(300 * time.Millisecond)
	acked := r.promote(t, "v2")
	waitServing(t, srv, "v2", 5*time.Second)
	took := time.Since(acked)
	time.Sleep(300 * time.Millisecond)
	l.Stop()
	t.Logf("promote_propagation_seconds=%.3f; %d requests under load across the swap (%v)",
		took.Seconds(), l.Sent.Load(), versions)
	if l.Failed.Load()+l.Rejected.Load() != 0 {
		t.Fatalf("requests failed across the swap: %s", l.Summary())
	}
	if took > 2*time.Second {
		t.Fatalf("edge served the promote %v after it was acknowledged, want <= 2s", took)
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Fatalf("load did not span the swap: %v", versions)
	}
}

// TestBadVersionsAreRejected: a wrongly signed version and one whose bytes
// were corrupted in storage never serve; the previous version keeps
// serving and the next good promote goes through.
func TestBadVersionsAreRejected(t *testing.T) {
	r := newRig(t)
	pub, priv, _ := model.GenerateKey()
	_, otherPriv, _ := model.GenerateKey()
	r.publish(t, "v1", artifact(t, 1), priv)
	r.publish(t, "wrongly-signed", artifact(t, 2), otherPriv)
	corrupt := artifact(t, 3)
	r.publish(t, "corrupted", corrupt, priv)
	r.publish(t, "unsigned", artifact(t, 4), nil)
	r.publish(t, "v2", artifact(t, 5), priv)
	// Flip a byte of the stored artifact behind the registry's back (bit
	// rot, or someone with bucket access).
	key := "blobs/sha256/" + strings.TrimPrefix(model.Digest(corrupt), "sha256:")
	bad := append([]byte{}, corrupt...)
	bad[len(bad)/2] ^= 0x10
	ctx := context.Background()
	if err := r.store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Put(ctx, key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var rejected []string
	srv, _ := startEdge(t, r, edge.SyncConfig{TrustedKeys: []ed25519.PublicKey{pub}, RequireSignature: true,
		OnReject: func(v string, err error) { mu.Lock(); rejected = append(rejected, v); mu.Unlock() }})
	r.promote(t, "v1")
	waitServing(t, srv, "v1", 10*time.Second)
	for _, v := range []string{"wrongly-signed", "corrupted", "unsigned"} {
		r.promote(t, v)
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := len(rejected)
			mu.Unlock()
			if n > 0 && rejected[n-1] == v {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not rejected (rejected so far: %v)", v, rejected)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if cur := srv.Current(); cur.Version != "v1" {
			t.Fatalf("after %s the edge serves %s, want v1", v, cur.Version)
		}
	}
	r.promote(t, "v2")
	waitServing(t, srv, "v2", 5*time.Second)
	t.Logf("rejected %v; kept serving v1, then took v2", rejected)
}
