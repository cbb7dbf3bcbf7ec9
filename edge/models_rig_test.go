package edge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/reviewsmodel"
)

// startModels runs an edge serving "demo" (channel production) and
// "reviews" (channel stable), a syncer each, sharing one cache directory.
func startModels(t *testing.T, r *rig, budget int64) (srv *edge.Server, url, cache string) {
	t.Helper()
	srv = edge.NewServer(edge.Config{Region: "eu-west", Models: []string{"demo", "reviews"}, MemoryBudget: budget, Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := srv.FastHTTPServer()
	go fs.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	cache = t.TempDir()
	done := make(chan struct{}, 2)
	for _, m := range [][2]string{{"demo", "production"}, {"reviews", "stable"}} {
		sy := edge.NewSyncer(srv, edge.SyncConfig{Client: r.reader, Model: m[0], Channel: m[1], Region: "eu-west", CacheDir: cache,
			Logger: quiet, Wait: 10 * time.Second})
		go func() { sy.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() { cancel(); <-done; <-done; fs.Shutdown(); srv.Close() })
	return srv, "http://" + ln.Addr().String(), cache
}

func waitModel(t *testing.T, srv *edge.Server, name, version string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, name+" serving "+version, func() error {
		if sv := srv.Slot(name).Current(); sv == nil || sv.Version != version {
			return fmt.Errorf("serving %v", sv)
		}
		return nil
	})
}

// TestPromotingOneModelLeavesTheOtherAlone: an edge serves two models from
// two channels; under load on both, promoting one swaps it with no failed
// request while every answer of the other stays what it was, byte for byte
// but the request ID.
func TestPromotingOneModelLeavesTheOtherAlone(t *testing.T) {
	r := newRig(t)
	r.publish(t, "v1", artifact(t, 1), nil)
	r.publish(t, "v2", artifact(t, 2), nil)
	r.promote(t, "v1")
	r.publishModel(t, "reviews", "r1", reviewsmodel.Artifact(), nil)
	r.promoteModel(t, "reviews", "stable", "r1")
	srv, url, cache := startModels(t, r, 0)
	waitModel(t, srv, "demo", "v1")
	waitModel(t, srv, "reviews", "r1")

	const reviewsBody = `{"model":"reviews","text":"a slow, tedious film with one fine scene"}`
	withoutID := func(body []byte) string { s, _, _ := strings.Cut(string(body), `,"request_id"`); return s }
	before := ""
	demoVersions, reviewsAnswers := map[string]int{}, map[string]int{}
	l := testenv.StartLoad(testenv.LoadConfig{URL: url + "/v1/predict", Workers: 8,
		Prepare: func(req *fasthttp.Request, n int64) {
			if n%2 == 0 {
				req.SetBodyString(reviewsBody)
			} else {
				req.SetBodyString(`{"text":"a wonderful film"}`)
			}
		},
		Observe: func(_ int64, resp *fasthttp.Response, err error) {
			var out struct{ Model, Version string }
			if err != nil || json.Unmarshal(resp.Body(), &out) != nil {
				return
			}
			if out.Model == "reviews" {
				reviewsAnswers[withoutID(resp.Body())]++
				if before == "" {
					before = withoutID(resp.Body())
				}
			} else {
				demoVersions[out.Version]++
			}
		}})
	time.Sleep(300 * time.Millisecond)
	r.promote(t, "v2")
	waitModel(t, srv, "demo", "v2")
	time.Sleep(300 * time.Millisecond)
	l.Stop()
	t.Logf("%d requests across demo's swap: demo %v; reviews answered %d distinct ways", l.Sent.Load(), demoVersions, len(reviewsAnswers))
	if l.Failed.Load()+l.Rejected.Load() != 0 {
		t.Fatalf("requests failed across the swap: %s", l.Summary())
	}
	if demoVersions["v1"] == 0 || demoVersions["v2"] == 0 {
		t.Fatalf("load did not span demo's swap: %v", demoVersions)
	}
	if len(reviewsAnswers) != 1 || !strings.Contains(before, `"model":"reviews","version":"r1"`) {
		t.Fatalf("reviews' answers changed while demo was promoted: %v", reviewsAnswers)
	}
	if sv := srv.Slot("reviews").Current(); sv.Version != "r1" || sv.Source != "registry" {
		t.Errorf("reviews after demo's promote: %+v", sv)
	}
	// demo's swap pruned the shared cache: reviews' artifact stays, for a
	// restart without the registry.
	if _, err := os.Stat(edge.BlobPath(cache, model.Digest(reviewsmodel.Artifact()))); err != nil {
		t.Errorf("reviews' cached artifact after demo's prune: %v", err)
	}
}

// TestAModelPastTheBudgetIsRefused: with a budget that holds both models'
// first versions, a version of one that would not fit is refused with the
// reason (in readiness and the refusal), the model keeps its version, the
// other model is untouched, and nothing of it is downloaded.
func TestAModelPastTheBudgetIsRefused(t *testing.T) {
	r := newRig(t)
	r.publish(t, "v1", artifact(t, 1), nil)
	r.promote(t, "v1")
	r.publishModel(t, "reviews", "r1", artifact(t, 3), nil)
	r.promoteModel(t, "reviews", "stable", "r1")
	r.publishModel(t, "reviews", "big", reviewsmodel.Artifact(), nil) // 1 MiB and a bit
	srv, url, cache := startModels(t, r, 1<<20)
	waitModel(t, srv, "demo", "v1")
	waitModel(t, srv, "reviews", "r1")

	r.promoteModel(t, "reviews", "stable", "big")
	testenv.Eventually(t, 20*time.Second, "the big version refused", func() error {
		if rf := srv.Slot("reviews").LastRefusal(); rf == nil || rf.Version != "big" {
			return fmt.Errorf("last refusal %+v", rf)
		}
		return nil
	})
	reason := srv.Slot("reviews").LastRefusal().Reason
	if !strings.Contains(reason, "does not fit the memory budget: reviews/big is 1.0 MiB; this edge's budget is 1.0 MiB") {
		t.Errorf("refusal: %s", reason)
	}
	code, body := get(t, url+"/health/ready")
	if code != 200 || !strings.Contains(body, `"last_refused":{"version":"big"`) || !strings.Contains(body, `"memory_budget":{"limit_mib":1`) {
		t.Errorf("readiness after the refusal: %d %s", code, body)
	}
	big := edge.BlobPath(cache, model.Digest(reviewsmodel.Artifact()))
	for _, path := range []string{big, big + ".partial"} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; want nothing downloaded", path, err)
		}
	}
	for name, want := range map[string]string{"demo": "v1", "reviews": "r1"} {
		if sv := srv.Slot(name).Current(); sv.Version != want {
			t.Errorf("%s serves %s after the refusal, want %s", name, sv.Version, want)
		}
	}
}

// TestSameBytesUnderANewName: promoting a version whose bytes the edge
// already serves renames it without a download: the answers, the
// readiness and the per-version series carry the new name.
func TestSameBytesUnderANewName(t *testing.T) {
	r := newRig(t)
	data := artifact(t, 1)
	r.publish(t, "v1", data, nil)
	r.publish(t, "v1-again", data, nil)
	r.promote(t, "v1")
	srv, url := startEdge(t, r, edge.SyncConfig{})
	waitServing(t, srv, "v1", 10*time.Second)
	r.promote(t, "v1-again")
	waitServing(t, srv, "v1-again", 10*time.Second)
	for range 3 {
		resp, err := http.Post(url+"/v1/predict", "application/json", strings.NewReader(`{"text":"a wonderful film"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"v1-again"`) || strings.Count(string(body), `"positive":`) != 1 {
			t.Fatalf("after the rename: %d %s", resp.StatusCode, body)
		}
	}
	if _, body := get(t, url+"/metrics"); !strings.Contains(body, `edge_version_requests_total{model="demo",version="v1-again"} 3`) {
		t.Errorf("the renamed version's series are missing")
	}
}
