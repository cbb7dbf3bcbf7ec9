package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/dir"
)

func dirStore(t *testing.T) store.Store {
	t.Helper()
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// publishVersions publishes tiny artifacts recording the given accuracies.
func publishVersions(t *testing.T, c *regclient.Client, accuracies map[string]float64) {
	t.Helper()
	seed := uint64(1)
	for _, v := range slices.Sorted(maps.Keys(accuracies)) {
		registrytest.Publish(t, c, "m", v, testenv.TinyArtifact(t, seed, accuracies[v]))
		seed++
	}
}

func promote(c *regclient.Client, channel string, req wire.MoveRequest) (wire.Channel, error) {
	return c.Promote(context.Background(), "m", channel, req)
}

func TestQualityGate(t *testing.T) {
	s := registrytest.Start(t, dirStore(t), registry.Config{}, admin.Config{})
	publishVersions(t, s.Publisher, map[string]float64{"good": 0.85, "worse": 0.80, "close": 0.845})
	ok := func(channel, version string) {
		t.Helper()
		if _, err := promote(s.Admin, channel, wire.MoveRequest{Version: version}); err != nil {
			t.Fatalf("promote %s to %s: %v", version, channel, err)
		}
	}
	ok("production", "good")
	_, err := promote(s.Admin, "production", wire.MoveRequest{Version: "worse"})
	if !regclient.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "quality gate") {
		t.Fatalf("worse candidate: %v, want 409 quality gate", err)
	}
	ok("production", "close") // within the 0.01 margin
	ok("staging", "worse")    // only production is gated
	if _, err := promote(s.Publisher, "production", wire.MoveRequest{Version: "good"}); !regclient.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a publisher moved production: %v, want 403", err)
	}
	if _, err := promote(s.Publisher, "staging", wire.MoveRequest{Version: "good", Force: true}); !regclient.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a publisher forced a move: %v, want 403", err)
	}
	ch, err := promote(s.Admin, "production", wire.MoveRequest{Version: "worse", Force: true, Reason: "hotfix"})
	if err != nil || ch.Global != "worse" || !ch.Change.Forced {
		t.Fatalf("forced promote: %+v, %v", ch, err)
	}
	entries, err := s.Admin.Audit(context.Background(), url.Values{"model": {"m"}})
	if err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, e := range entries {
		if e.Action == "promote" {
			results = append(results, fmt.Sprintf("%s:%s:%s:%v", e.Channel, e.Version, e.Result, e.Forced))
		}
	}
	want := []string{"production:good:ok:false", "production:worse:refused:false", "production:close:ok:false",
		"staging:worse:ok:false", "production::denied:false", "staging:good:denied:true", "production:worse:ok:true"}
	if !slices.Equal(results, want) {
		t.Fatalf("audit\n%v, want\n%v", results, want)
	}
}

func TestRollbackTargets(t *testing.T) {
	s := registrytest.Start(t, dirStore(t), registry.Config{}, admin.Config{ProductionChannels: []string{"none"}})
	publishVersions(t, s.Publisher, map[string]float64{"v1": 0, "v2": 0, "v3": 0})
	move := func(rollback bool, req wire.MoveRequest) wire.Channel {
		t.Helper()
		f := s.Admin.Promote
		if rollback {
			f = s.Admin.Rollback
		}
		ch, err := f(context.Background(), "m", "production", req)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		return ch
	}
	if _, err := s.Admin.Rollback(context.Background(), "m", "production", wire.MoveRequest{}); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("rollback of a channel never moved: %v, want 404", err)
	}
	move(false, wire.MoveRequest{Version: "v1"})
	move(false, wire.MoveRequest{Version: "v2"})
	move(false, wire.MoveRequest{Version: "v3", Regions: []string{"eu-west"}})
	if ch := move(true, wire.MoveRequest{Regions: []string{"eu-west"}}); ch.Regions["eu-west"] != "v2" || ch.Global != "v2" {
		t.Fatalf("regional rollback: %+v", ch)
	}
	if ch := move(true, wire.MoveRequest{}); ch.Global != "v1" {
		t.Fatalf("global rollback: %+v", ch)
	}
	if ch := move(true, wire.MoveRequest{Version: "v3", Regions: []string{"ap-south"}}); ch.Resolve("ap-south") != "v3" || ch.Resolve("us-east") != "v1" {
		t.Fatalf("rollback of one region to a named version: %+v", ch)
	}
	if _, err := promote(s.Admin, "staging", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Admin.Rollback(context.Background(), "m", "staging", wire.MoveRequest{Regions: []string{"us-west"}})
	if !regclient.IsStatus(err, http.StatusConflict) {
		t.Fatalf("rollback of a region with no earlier target: %v, want 409", err)
	}
	for _, bad := range []wire.MoveRequest{{Version: "../v1"}, {Version: "v1", Regions: []string{"EU"}}, {Version: "v1", Reason: strings.Repeat("x", 2000)}} {
		if _, err := s.Admin.Promote(context.Background(), "m", "production", bad); !regclient.IsStatus(err, http.StatusBadRequest) {
			t.Errorf("promote %+v: %v, want 400", bad, err)
		}
	}
}

// failingAudit is a real directory store whose audit writes fail while
// failAudit is set: the storage of the audit trail is down, the rest is not.
type failingAudit struct {
	store.Store
	failAudit atomic.Bool
}

func (f *failingAudit) Put(ctx context.Context, key string, r io.Reader, size int64) (store.Info, error) {
	if f.failAudit.Load() && strings.HasPrefix(key, "audit/") {
		return store.Info{}, errors.New("audit bucket unreachable at 127.0.0.1:9")
	}
	return f.Store.Put(ctx, key, r, size)
}

// TestAuditRule: a move that took effect but could not be audited answers
// 500 saying so (and the cause stays in the log); the failure is counted;
// a refusal stays a refusal.
func TestAuditRule(t *testing.T) {
	st := &failingAudit{Store: dirStore(t)}
	s := registrytest.Start(t, st, registry.Config{}, admin.Config{ProductionChannels: []string{"none"}})
	publishVersions(t, s.Publisher, map[string]float64{"v1": 0})
	counter := func() uint64 { return metrics.GetOrCreateCounter(`registry_audit_write_errors_total`).Get() }
	before := counter()
	st.failAudit.Store(true)
	_, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v1"})
	var ae *regclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError ||
		!strings.Contains(ae.Message, "moved to revision 1") || !strings.Contains(ae.Message, "audit entry could not be written") {
		t.Fatalf("unaudited promote: %v, want 500 saying the move happened but was not audited", err)
	}
	if strings.Contains(ae.Message, "127.0.0.1") || ae.RequestID == "" {
		t.Fatalf("the client message must hold the request ID and no cause: %+v", ae)
	}
	ch, err := s.Reader.GetChannel(context.Background(), "m", "production", 0, 0)
	if err != nil || ch.Global != "v1" {
		t.Fatalf("the move must stand: %+v, %v", ch, err)
	}
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v9"}); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("a refused promote must keep its own status when its audit fails: %v", err)
	}
	if got := counter() - before; got != 2 {
		t.Fatalf("registry_audit_write_errors_total grew by %d, want 2", got)
	}
	st.failAudit.Store(false)
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatalf("with the audit trail back: %v", err)
	}
}

// TestRolloutStatus registers edges in a real Consul datacenter with the
// meta they report and checks what status makes of them.
func TestRolloutStatus(t *testing.T) {
	consul := testenv.Consul(t, "dc-eu")
	agent := consul.Agent("dc-eu")
	s := registrytest.Start(t, dirStore(t), registry.Config{}, admin.Config{Consul: agent.Client(), ProductionChannels: []string{"none"}})
	publishVersions(t, s.Publisher, map[string]float64{"v1": 0, "v2": 0})
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	health := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	port := serve(t, health)
	register := func(id, version string) {
		t.Helper()
		err := discovery.Register(agent.Client().Agent(), discovery.Registration{
			ID: id, Name: "sentiment-edge", Address: "127.0.0.1", Port: port,
			Meta: map[string]string{discovery.MetaRegion: "eu-west", discovery.MetaModel: "m",
				discovery.MetaChannel: "production", discovery.MetaVersion: version},
			CheckURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/", CheckInterval: 100 * time.Millisecond, InitialStatus: "passing",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	status := func() wire.Status {
		t.Helper()
		var st wire.Status
		if err := s.Reader.Raw(context.Background(), http.MethodGet, "/v1/admin/models/m/status?channel=production", nil, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	register("edge-1", "v1")
	register("edge-2", "v1")
	if st := status(); !st.Converged || len(st.Regions) != 1 || len(st.Regions[0].Instances) != 2 || st.Regions[0].Expected != "v1" {
		t.Fatalf("two edges on v1: %+v", st)
	}
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v2", Regions: []string{"eu-west"}}); err != nil {
		t.Fatal(err)
	}
	register("edge-1", "v2")
	st := status()
	if st.Converged || st.Regions[0].Expected != "v2" {
		t.Fatalf("one edge of two on v2 must not be converged: %+v", st)
	}
	register("edge-2", "v2")
	if st := status(); !st.Converged {
		t.Fatalf("both edges on v2: %+v", st)
	}
}

func serve(t *testing.T, srv *http.Server) int {
	t.Helper()
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	srv.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	go srv.ListenAndServe()
	t.Cleanup(func() { srv.Close() })
	return ports[0]
}

// TestCandidates: an admin puts a version beside a region's target; the
// region's resolution carries it with its share, other regions do not;
// bad requests are refused; a promote in the region ends it; every move
// is audited.
func TestCandidates(t *testing.T) {
	s := registrytest.Start(t, dirStore(t), registry.Config{}, admin.Config{})
	publishVersions(t, s.Publisher, map[string]float64{"v1": 0.85, "v2": 0.86})
	ctx := context.Background()
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	set := func(c *regclient.Client, region string, cand wire.Candidate) error {
		_, err := c.SetCandidate(ctx, "m", "production", region, wire.CandidateRequest{Candidate: cand, Reason: "canary"})
		return err
	}
	for name, err := range map[string]error{
		"publisher":        set(s.Publisher, "eu-west", wire.Candidate{Version: "v2", Percent: 10}),
		"percent over 100": set(s.Admin, "eu-west", wire.Candidate{Version: "v2", Percent: 101}),
		"unknown version":  set(s.Admin, "eu-west", wire.Candidate{Version: "v9", Percent: 10}),
		"the target":       set(s.Admin, "eu-west", wire.Candidate{Version: "v1", Percent: 10}),
	} {
		if err == nil {
			t.Errorf("%s: a candidate was set", name)
		}
	}
	if err := set(s.Admin, "eu-west", wire.Candidate{Version: "v2", Percent: 10, Shadow: 0.5}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Reader.Resolve(ctx, "m", "production", "eu-west", 0, 0)
	if err != nil || res.Version.Version != "v1" || res.Candidate == nil || res.Candidate.Version.Version != "v2" ||
		res.Candidate.Percent != 10 || res.Candidate.Shadow != 0.5 || res.Candidate.Version.Digest == "" {
		t.Fatalf("eu-west resolves to %+v (candidate %+v), %v", res, res.Candidate, err)
	}
	if res, _ := s.Reader.Resolve(ctx, "m", "production", "us-east", 0, 0); res.Candidate != nil {
		t.Errorf("us-east has a candidate: %+v", res.Candidate)
	}
	if _, err := promote(s.Admin, "production", wire.MoveRequest{Version: "v2", Regions: []string{"eu-west"}}); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.Reader.Resolve(ctx, "m", "production", "eu-west", 0, 0); res.Version.Version != "v2" || res.Candidate != nil {
		t.Errorf("after promoting v2 in eu-west: %s, candidate %+v", res.Version.Version, res.Candidate)
	}
	if _, err := s.Admin.ClearCandidate(ctx, "m", "production", "eu-west"); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Errorf("clearing a candidate that is gone: %v, want 404", err)
	}
	entries, err := s.Admin.Audit(ctx, url.Values{"action": {"set_candidate"}})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]int{}
	for _, e := range entries {
		results[e.Result]++
	}
	if results["ok"] != 1 || results["refused"] < 2 {
		t.Errorf("set_candidate audit results %v", results)
	}
}
