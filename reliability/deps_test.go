package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

const (
	adminToken  = registrytest.AdminToken
	readerToken = registrytest.ReaderToken
)

// registry starts a registry binary on the S3 bucket, registered in
// Consul (or on a directory when s3srv is nil); its log is checked.
func (s *services) registry(t *testing.T, name, addr string, s3srv *testenv.S3Server, bucket, consulAddr string) *testenv.Process {
	t.Helper()
	p := registrytest.StartBinary(t, registrytest.Binary{Addr: addr, S3: s3srv, Bucket: bucket, Consul: consulAddr,
		Args: []string{"-service-id", name}}).Proc
	s.procs = append(s.procs, p)
	return p
}

// publish uploads a tiny artifact as model demo, version v.
func publish(ctx context.Context, c *regclient.Client, seed uint64, v string, t *testing.T) error {
	data := testenv.TinyArtifact(t, seed, 0)
	_, err := c.Publish(ctx, "demo", v, bytes.NewReader(data), int64(len(data)), wire.NewVersion{})
	return err
}

// servedVersion asks an edge which version answers a prediction.
func servedVersion(addr string) string {
	req, resp, release := predictRequest("http://"+addr+"/v1/predict", `{"text":"fine"}`)
	defer release()
	if err := fasthttp.DoTimeout(req, resp, 2*time.Second); err != nil || resp.StatusCode() != 200 {
		return ""
	}
	var p struct{ Version string }
	json.Unmarshal(resp.Body(), &p)
	return p.Version
}

// TestRegistryReplicaLoss kills one of two registry replicas (sharing one
// bucket, both in Consul) in the middle of promotes and publishes.
func TestRegistryReplicaLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	consul := testenv.Consul(t, "dc1")
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "ha")
	var s services
	addrs := freeAddrs(t, 3)
	regA := s.registry(t, "registry-a", addrs[0], s3srv, bucket, consul.Agent("dc1").HTTPAddr())
	s.registry(t, "registry-b", addrs[1], s3srv, bucket, consul.Agent("dc1").HTTPAddr())
	both := "http://" + addrs[0] + ",http://" + addrs[1]
	admin := &regclient.Client{BaseURL: both, Token: adminToken}
	ctx := context.Background()
	for i, v := range []string{"v1", "v2"} {
		if err := publish(ctx, admin, uint64(i+1), v, t); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	s.startEdge(t, testenv.Edge{Name: "edge", Addr: addrs[2], Model: "demo", Registry: both, Token: readerToken})
	testenv.Until(t, 20*time.Second, "both registries passing in Consul", func() bool {
		entries, _, err := consul.Agent("dc1").Client().Health().Service("sentiment-registry", "", true, nil)
		return err == nil && len(entries) == 2
	})

	// Promotes alternate v1/v2 while a publisher adds versions; replica A
	// dies a third of the way through.
	promotes := pick(30, 150)
	type ack struct {
		version  string
		revision uint64
	}
	var acked []ack
	var promoteErrs int
	var published []string
	var publishErrs int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pub := &regclient.Client{BaseURL: both, Token: adminToken}
		for i := 0; i < promotes/3; i++ {
			v := fmt.Sprintf("p%d", i)
			if err := publish(ctx, pub, uint64(100+i), v, t); err != nil {
				publishErrs++
				continue
			}
			published = append(published, v)
		}
	}()
	var killedAt time.Time
	for i := 0; i < promotes; i++ {
		if i == promotes/3 {
			regA.Kill()
			killedAt = time.Now()
		}
		v := []string{"v1", "v2"}[i%2]
		ch, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: v, Reason: fmt.Sprint("ha ", i)})
		if err != nil {
			promoteErrs++
			t.Logf("promote %d: %v", i, err)
			continue
		}
		acked = append(acked, ack{v, ch.Revision})
	}
	wg.Wait()
	last := acked[len(acked)-1]

	// Every acknowledged promote is in the history, at its revision.
	hist, err := admin.History(ctx, "demo", "production", 1000)
	if err != nil {
		t.Fatal(err)
	}
	byRev := map[uint64]string{}
	for _, h := range hist {
		byRev[h.Revision] = h.Global
	}
	lost := 0
	for _, a := range acked {
		if byRev[a.revision] != a.version {
			lost++
			t.Errorf("acknowledged promote of %s at revision %d: history has %q", a.version, a.revision, byRev[a.revision])
		}
	}
	// No half-published version: every listed version's artifact is whole.
	for _, v := range published {
		ver, err := admin.GetVersion(ctx, "demo", v)
		if err != nil {
			t.Errorf("acknowledged publish %s: %v", v, err)
			continue
		}
		h := sha256.New()
		if _, err := admin.Download(ctx, ver.Digest, h); err != nil || "sha256:"+hex.EncodeToString(h.Sum(nil)) != ver.Digest {
			t.Errorf("version %s: artifact does not match its digest (%v)", v, err)
		}
	}
	// The edge follows through the surviving replica.
	converge := testenv.Until(t, 10*time.Second, "the edge serves the last acknowledged promote", func() bool {
		return servedVersion(addrs[2]) == last.version
	})
	testenv.Until(t, 20*time.Second, "Consul marks the dead replica critical", func() bool {
		entries, _, err := consul.Agent("dc1").Client().Health().Service("sentiment-registry", "", true, nil)
		return err == nil && len(entries) == 1
	})
	report(row{scenario: "registry replica killed mid-promotes", offered: fmt.Sprintf("%d promotes, %d publishes", promotes, promotes/3),
		requests: int64(promotes + promotes/3), failed: int64(promoteErrs + publishErrs),
		recovery: fmt.Sprintf("edge on last promote %v after the loop", converge.Round(time.Millisecond)),
		note:     fmt.Sprintf("%d acked promotes, %d lost; %d publishes whole; Consul had replica A critical by %v after the kill", len(acked), lost, len(published), time.Since(killedAt).Round(100*time.Millisecond))})
	s.checkLogs(t, adminToken, readerToken)
}

// TestDependencyOutages stops S3, then the Consul agent, under steady load
// through the geo router (following Consul), and checks serving goes on
// and state converges when they return.
func TestDependencyOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	consul := testenv.Consul(t, "dc1")
	agent := consul.Agent("dc1")
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "outage")
	var s services
	addrs := freeAddrs(t, 4)
	s.registry(t, "registry", addrs[0], s3srv, bucket, agent.HTTPAddr())
	admin := &regclient.Client{BaseURL: "http://" + addrs[0], Token: adminToken}
	ctx := context.Background()
	if err := publish(ctx, admin, 1, "v1", t); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"edge-1", "edge-2"} {
		s.startEdge(t, testenv.Edge{Name: id, Addr: addrs[1+i], Model: "demo", Registry: "http://" + addrs[0], Token: readerToken,
			Consul: agent.HTTPAddr(), ServiceID: id})
	}
	s.startGeo(t, testenv.Geo{Addr: addrs[3], Regions: "us-east=38.9,-77.0", Default: "us-east", Consul: agent.HTTPAddr(),
		Datacenters: "us-east=dc1", PerTry: "300ms"})
	testenv.Until(t, 20*time.Second, "the geo router sees both edges", func() bool { _, n := routeState(addrs[3], "us-east"); return n == 2 })

	rate := pick(300.0, 1000.0)
	l := startLoad("http://"+addrs[3]+"/v1/predict", "", rate, 256)
	time.Sleep(2 * time.Second)

	// S3 down: publishing fails cleanly, serving goes on.
	s3srv.Stop()
	err := publish(ctx, admin, 2, "v2", t)
	if err == nil || !(regclient.IsStatus(err, 503) || regclient.IsStatus(err, 500) || strings.Contains(err.Error(), "unreachable")) {
		t.Errorf("publish with S3 down: %v, want a clear 5xx", err)
	}
	time.Sleep(pick(3*time.Second, 30*time.Second))
	if err := s3srv.Start(); err != nil {
		t.Fatal(err)
	}
	publishAgain := testenv.Until(t, 30*time.Second, "publishing works again after S3 returns", func() bool {
		return publish(ctx, admin, 2, "v2", t) == nil
	})
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v2", Reason: "after S3"}); err != nil {
		t.Fatal(err)
	}
	converge := testenv.Until(t, 10*time.Second, "both edges serve v2", func() bool {
		return servedVersion(addrs[1]) == "v2" && servedVersion(addrs[2]) == "v2"
	})

	// The Consul agent dies (a dev agent forgets its catalog): routing
	// goes on from the last view; edges register again when it returns.
	agent.Process().Kill()
	time.Sleep(pick(3*time.Second, 30*time.Second))
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	reregistered := testenv.Until(t, 60*time.Second, "both edges registered and passing again", func() bool {
		entries, _, err := agent.Client().Health().Service("sentiment-edge", "", true, nil)
		return err == nil && len(entries) == 2
	})
	time.Sleep(time.Second)
	l.Stop()
	t.Logf("load: %s", l.Summary())
	if n := l.Failed.Load() + l.Rejected.Load(); n > 0 {
		t.Errorf("%d client requests failed during the outages: %s", n, l.Summary())
	}
	// Audit: exactly one entry per acknowledged promote, none lost or doubled.
	entries, err := admin.Audit(ctx, url.Values{"action": {"promote"}, "model": {"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	okPromotes := 0
	for _, e := range entries {
		if e.Result == "ok" {
			okPromotes++
		}
	}
	if okPromotes != 2 {
		t.Errorf("%d successful promote audit entries, want 2 (v1, v2)", okPromotes)
	}
	report(row{scenario: "S3 down, then Consul agent restarted", offered: fmt.Sprintf("%.0f/s", rate), requests: l.Sent.Load(),
		failed: l.Failed.Load() + l.Rejected.Load(), p99: l.Quantile(0.99),
		recovery: fmt.Sprintf("publish %v, edges on v2 %v, Consul re-registration %v", publishAgain.Round(time.Millisecond),
			converge.Round(time.Millisecond), reregistered.Round(time.Millisecond)),
		note: "audit: 2 promotes, 2 entries"})
	s.checkLogs(t, adminToken, readerToken)
}
