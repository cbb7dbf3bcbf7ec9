package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestCandidateFromTheRegistry runs the registry and edge binaries: an
// admin sets a candidate at 30 % in the edge's region; the edge fetches
// and verifies it, answers about 30 % of the routing keys with it, and
// drops it when the admin clears it. Restarted with the registry out of
// reach, an edge keeps the split it had (static stability).
func TestCandidateFromTheRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry and edge binaries")
	}
	reg := registrytest.StartBinary(t, registrytest.Binary{})
	registrytest.Publish(t, reg.Publisher, "sentiment", "v1", testenv.TinyArtifact(t, 1, 0))
	registrytest.Publish(t, reg.Publisher, "sentiment", "v2", testenv.TinyArtifact(t, 2, 0))
	ctx := context.Background()
	if _, err := reg.Admin.Promote(ctx, "sentiment", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	edge, cache := fmt.Sprintf("127.0.0.1:%d", ports[0]), filepath.Join(t.TempDir(), "cache")
	startEdge := func(registry string) *testenv.Service {
		return testenv.StartEdge(t, testenv.Edge{Name: "edge", Addr: edge, Registry: registry, Token: registrytest.ReaderToken,
			CacheDir: cache, TrustedProxies: "127.0.0.1/32"})
	}
	first := startEdge(reg.URL)
	served := func(key string) string {
		req, _ := http.NewRequest("POST", "http://"+edge+"/v1/predict", strings.NewReader(`{"text":"a great film"}`))
		req.Header.Set("X-Routing-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Version string }
		json.NewDecoder(resp.Body).Decode(&out)
		return out.Version
	}
	share := func() float64 {
		n := 0
		for i := 0; i < 1000; i++ {
			if served(fmt.Sprintf("user-%d", i)) == "v2" {
				n++
			}
		}
		return float64(n) / 1000
	}
	set := func() {
		if _, err := reg.Admin.SetCandidate(ctx, "sentiment", "production", "us-east",
			wire.CandidateRequest{Candidate: wire.Candidate{Version: "v2", Percent: 30}}); err != nil {
			t.Fatal(err)
		}
		testenv.Until(t, 20*time.Second, "condition", func() bool { return share() > 0 })
	}
	set()
	if got := share(); got < 0.25 || got > 0.35 {
		t.Errorf("the candidate answered %.0f%% of the keys, want about 30%%", 100*got)
	}
	if _, err := reg.Admin.ClearCandidate(ctx, "sentiment", "production", "us-east"); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, 20*time.Second, "condition", func() bool { return share() == 0 })
	shadowDisagrees(t, reg, edge)
	set()
	before := share()
	first.Stop(10 * time.Second)
	startEdge("http://127.0.0.1:1") // nothing listens there
	if got := share(); got != before {
		t.Errorf("restarted without the registry, the candidate answers %.0f%% of the keys, not the %.0f%% it did", 100*got, 100*before)
	}
}

// shadowDisagrees puts a flipped-label v3 in the shadow of every request:
// the answers stay v1's, and the edge counts the shadow's disagreement
// (at least 0.8 of the texts).
func shadowDisagrees(t *testing.T, reg *registrytest.Server, edge string) {
	t.Helper()
	ctx := context.Background()
	registrytest.Publish(t, reg.Publisher, "sentiment", "v3", testenv.FlippedArtifact(t, 3))
	if _, err := reg.Admin.SetCandidate(ctx, "sentiment", "production", "us-east",
		wire.CandidateRequest{Candidate: wire.Candidate{Version: "v3", Shadow: 1}}); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, 20*time.Second, "condition", func() bool {
		resp, err := http.Get("http://" + edge + "/v2/models/sentiment/versions/v3/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	for i, text := range []string{"a great film", "a dull film", "a wonderful film", "a tedious film"} {
		for j := 0; j < 25; j++ {
			// A user each (the test is the edge's trusted gateway): one
			// client's requests past the first 10 a minute would count in
			// no figure, the shadow's included.
			req, _ := http.NewRequest("POST", "http://"+edge+"/v1/predict", strings.NewReader(`{"text":"`+text+`"}`))
			req.Header.Set("X-Routing-Key", fmt.Sprintf("shadow-user-%d-%d", i, j))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ Label, Version string }
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if want := map[bool]string{true: "positive", false: "negative"}[i%2 == 0]; out.Label != want || out.Version != "v1" {
				t.Fatalf("with a flipped shadow, %q answered %s by %s, want %s by v1", text, out.Label, out.Version, want)
			}
		}
	}
	var agree, disagree float64
	testenv.Until(t, 20*time.Second, "condition", func() bool {
		agree, disagree = shadowCounts(t, edge, "v3")
		return agree+disagree >= 100
	})
	if rate := disagree / (agree + disagree); rate < 0.8 {
		t.Errorf("shadow disagreement %.2f over %.0f texts, want at least 0.8", rate, agree+disagree)
	}
	t.Logf("shadow of a flipped-label candidate: disagreement %.2f over %.0f texts", disagree/(agree+disagree), agree+disagree)
}

// shadowCounts reads the edge's shadow counters for a version.
func shadowCounts(t *testing.T, edge, version string) (agree, disagree float64) {
	t.Helper()
	resp, err := http.Get("http://" + edge + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		prefix := `edge_shadow_predictions_total{model="sentiment",version="` + version + `",result="`
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		result, value, _ := strings.Cut(rest, `"} `)
		n, _ := strconv.ParseFloat(value, 64)
		if result == "agree" {
			agree = n
		} else {
			disagree = n
		}
	}
	return agree, disagree
}
