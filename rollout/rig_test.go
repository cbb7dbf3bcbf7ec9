package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/valyala/fasthttp"
)

// rig is the real thing: two Consul datacenters, an S3 server, two
// registry replicas on one bucket driving rollouts, an edge per region
// registered in its datacenter, and the geo router in front.
type rig struct {
	replicas []*registrytest.Server
	admin    *regclient.Client // both replicas
	geo      string
}

const interval = 2 * time.Second

func startRig(t *testing.T) *rig {
	consul := testenv.Consul(t, "dc-eu", "dc-us")
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "rollout")
	ports, err := testenv.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	r := &rig{geo: addr(4)}
	var urls []string
	for i := 0; i < 2; i++ {
		rep := registrytest.StartBinary(t, registrytest.Binary{Addr: addr(i), S3: s3srv, Bucket: bucket,
			Consul: consul.Agent("dc-eu").HTTPAddr(), Args: []string{"-rollout-tick", "200ms", "-rollout-lease", "2s"}})
		r.replicas = append(r.replicas, rep)
		urls = append(urls, rep.URL)
	}
	r.admin = &regclient.Client{BaseURL: strings.Join(urls, ","), Token: registrytest.AdminToken}
	// The good candidates are retrains of v1 that score like it (same
	// seed, new metadata); another seed would shift the score histogram
	// enough to trip the PSI threshold on the test's eight texts.
	registrytest.Publish(t, r.admin, "sentiment", "v1", testenv.TinyArtifact(t, 1, 0))
	registrytest.Publish(t, r.admin, "sentiment", "v2", testenv.TinyArtifact(t, 1, 0.9))
	registrytest.Publish(t, r.admin, "sentiment", "v4", testenv.TinyArtifact(t, 1, 0.91))
	registrytest.Publish(t, r.admin, "sentiment", "v3-flipped", testenv.FlippedArtifact(t, 1))
	if _, err := r.admin.Promote(context.Background(), "sentiment", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	for i, region := range []string{"eu-west", "us-east"} {
		dc := map[string]string{"eu-west": "dc-eu", "us-east": "dc-us"}[region]
		testenv.StartEdge(t, testenv.Edge{Addr: addr(2 + i), Region: region, Model: "sentiment", Registry: strings.Join(urls, ","),
			Token: registrytest.ReaderToken, Consul: consul.Agent(dc).HTTPAddr(), TrustedProxies: "127.0.0.1/32"})
	}
	// The load is a gateway's users, keyed.
	testenv.StartGeo(t, testenv.Geo{Addr: r.geo, Consul: consul.Agent("dc-eu").HTTPAddr(), Datacenters: "eu-west=dc-eu,us-east=dc-us",
		TrustedProxies: "127.0.0.1/32"})
	for _, region := range []string{"eu-west", "us-east"} {
		testenv.Until(t, 30*time.Second, "condition", func() bool {
			v, err := predict(http.DefaultClient, r.geo, region, "probe")
			return err == nil && v == "v1"
		})
	}
	return r
}

// answer is one prediction through the router.
type answer struct {
	at      time.Time
	region  string
	version string
	err     error
}

// load is steady traffic through the geo router to both regions, each
// request with a random routing key (a user), until stopped: its answers
// in order.
type load struct {
	*testenv.Load
	answers []answer
}

func startLoad(r *rig) *load {
	l := &load{}
	regions := []string{"eu-west", "eu-west", "eu-west", "us-east"}
	l.Load = testenv.StartLoad(testenv.LoadConfig{URL: "http://" + r.geo + "/v1/predict", Workers: 4, Pause: time.Millisecond,
		Prepare: func(req *fasthttp.Request, n int64) {
			req.SetBodyString(fmt.Sprintf(`{"text":%q}`, texts[rand.IntN(len(texts))]))
			req.Header.Set("X-Region", regions[n%4])
			req.Header.Set("X-Routing-Key", fmt.Sprintf("user-%d", rand.IntN(1_000_000)))
		},
		Observe: func(n int64, resp *fasthttp.Response, err error) { // one at a time
			region := regions[n%4]
			v := ""
			if err == nil {
				v, err = servedVersion(resp.StatusCode(), resp.Body(), region)
			}
			l.answers = append(l.answers, answer{time.Now(), region, v, err})
		}})
	return l
}

func (l *load) end() []answer {
	l.Stop()
	return l.answers
}

// texts are what the load sends: the words the test models know.
var texts = []string{"a great film", "a wonderful film", "a moving film", "a funny film",
	"an awful film", "a boring film", "a dull film", "a tedious film"}

func predict(client *http.Client, geo, region, key string) (string, error) {
	body := fmt.Sprintf(`{"text":%q}`, texts[rand.IntN(len(texts))])
	req, _ := http.NewRequest("POST", "http://"+geo+"/v1/predict", strings.NewReader(body))
	req.Header.Set("X-Region", region)
	req.Header.Set("X-Routing-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	return servedVersion(resp.StatusCode, raw, region)
}

// servedVersion reads the version from a prediction's answer, which must
// be a 200 from region.
func servedVersion(status int, body []byte, region string) (string, error) {
	var out struct{ Version, Region string }
	if err := json.Unmarshal(body, &out); err != nil || status != 200 {
		return "", fmt.Errorf("HTTP %d (%v)", status, err)
	}
	if out.Region != region {
		return "", fmt.Errorf("served by %s, not %s", out.Region, region)
	}
	return out.Version, nil
}

// waitStatus polls the rollout until it has ended and its last actions
// are applied.
func waitStatus(t *testing.T, c *regclient.Client, within time.Duration) wire.Rollout {
	t.Helper()
	var ro wire.Rollout
	testenv.Until(t, within, "condition", func() bool {
		var err error
		ro, err = c.GetRollout(context.Background(), "sentiment", "production")
		return err == nil && !wire.RolloutActive(ro.Status) && len(ro.Pending) == 0
	})
	return ro
}

func failures(t *testing.T, answers []answer) {
	t.Helper()
	n := 0
	for _, a := range answers {
		if a.err != nil {
			if n < 5 {
				t.Errorf("request at %s to %s failed: %v", a.at.Format("15:04:05.000"), a.region, a.err)
			}
			n++
		}
	}
	if n > 0 {
		t.Errorf("%d of %d requests failed", n, len(answers))
	}
}

var fastSpec = wire.RolloutSpec{
	Steps: []float64{5, 25, 50, 100}, Interval: wire.Duration(interval), Shadow: 0.2,
	Thresholds: wire.Thresholds{MinRequests: 20, MinShadow: 20},
}

func TestRolloutsOnTheRig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Consul, S3, two registries, two edges and the geo router")
	}
	r := startRig(t)
	ctx := context.Background()

	t.Run("a good candidate goes 5-25-50-100 in eu-west", func(t *testing.T) {
		l := startLoad(r)
		spec := fastSpec
		spec.Version, spec.Regions = "v2", []string{"eu-west"}
		start := time.Now()
		if _, err := r.admin.StartRollout(ctx, "sentiment", "production", spec); err != nil {
			t.Fatal(err)
		}
		ro := waitStatus(t, r.admin, 60*time.Second)
		took := time.Since(start)
		testenv.Until(t, 10*time.Second, "condition", func() bool { v, _ := predict(http.DefaultClient, r.geo, "eu-west", "after"); return v == "v2" })
		answers := l.end()
		t.Logf("rollout_completed_seconds=%.1f (4 steps of %v; %d requests)", took.Seconds(), interval, len(answers))
		if ro.Status != wire.RolloutSucceeded {
			t.Fatalf("status %s: %s", ro.Status, ro.Reason)
		}
		var percents []float64
		for _, s := range ro.History {
			percents = append(percents, s.Percent)
			if s.Outcome != "passed" || s.Figures == nil || s.Figures.Candidate.Requests < 20 {
				t.Errorf("step %g%%: %s with figures %+v", s.Percent, s.Outcome, s.Figures)
			}
		}
		if fmt.Sprint(percents) != "[5 25 50 100]" {
			t.Errorf("steps taken %v", percents)
		}
		failures(t, answers)
		ch, err := r.admin.GetChannel(ctx, "sentiment", "production", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Resolve("eu-west") != "v2" || ch.Resolve("us-east") != "v1" || len(ch.Candidates) != 0 {
			t.Errorf("channel after the rollout: %+v", ch)
		}
	})

	t.Run("a flipped candidate is rolled back at its first step", func(t *testing.T) {
		l := startLoad(r)
		spec := fastSpec
		spec.Version, spec.Regions = "v3-flipped", []string{"eu-west"}
		spec.Force = true // it records no accuracy: past the quality gate, as a model that passed it offline
		start := time.Now()
		if _, err := r.admin.StartRollout(ctx, "sentiment", "production", spec); err != nil {
			t.Fatal(err)
		}
		ro := waitStatus(t, r.admin, 30*time.Second)
		detect := time.Since(start)
		// Until the edge has dropped the candidate, then a second more.
		testenv.Until(t, 10*time.Second, "condition", func() bool {
			for i := 0; i < 200; i++ {
				if v, _ := predict(http.DefaultClient, r.geo, "eu-west", fmt.Sprintf("check-%d", i)); v == "v3-flipped" {
					return false
				}
			}
			return true
		})
		time.Sleep(time.Second)
		answers := l.end()
		if ro.Status != wire.RolloutRolledBack {
			t.Fatalf("status %s: %s", ro.Status, ro.Reason)
		}
		bad, eu := 0, 0
		for _, a := range answers {
			if a.region == "eu-west" && a.err == nil {
				eu++
				if a.version == "v3-flipped" {
					bad++
				}
			}
		}
		share := 100 * float64(bad) / float64(eu)
		last := ro.History[len(ro.History)-1]
		t.Logf("rollback_detect_seconds=%.2f (interval %v); bad version answered %d of %d eu-west requests (%.2f%%); figures: %s",
			detect.Seconds(), interval, bad, eu, share, ro.Reason)
		if detect > 2*interval+time.Second { // one second for the test's own polling and start-up
			t.Errorf("detected after %v, more than two intervals", detect)
		}
		if share > spec.Steps[0]+1 {
			t.Errorf("the bad version answered %.2f%% of requests, more than the first step's %g%% + 1", share, spec.Steps[0])
		}
		if len(ro.History) != 1 || last.Outcome != "breached" || last.Figures == nil || last.Figures.Disagreement < 0.8 {
			t.Errorf("history %+v", ro.History)
		}
		failures(t, answers)
		ch, _ := r.admin.GetChannel(ctx, "sentiment", "production", 0, 0)
		if ch.Resolve("eu-west") != "v2" || len(ch.Candidates) != 0 {
			t.Errorf("channel after the rollback: %+v", ch)
		}
		entries, err := r.admin.Audit(ctx, url.Values{"action": {"rollout_rollback"}, "model": {"sentiment"}})
		if err != nil || len(entries) != 1 || !strings.Contains(entries[0].Detail, "shadow disagreement") {
			t.Errorf("rollback audit entries %+v (%v)", entries, err)
		}
	})

	t.Run("the other replica finishes a rollout when its driver is killed", func(t *testing.T) {
		l := startLoad(r)
		spec := fastSpec
		spec.Version, spec.Regions = "v4", []string{"eu-west", "us-east"}
		started, err := r.admin.StartRollout(ctx, "sentiment", "production", spec)
		if err != nil {
			t.Fatal(err)
		}
		var holder string
		testenv.Until(t, 30*time.Second, "condition", func() bool {
			ro, err := r.admin.GetRollout(ctx, "sentiment", "production")
			holder = ro.Holder
			if !wire.RolloutActive(ro.Status) {
				t.Fatalf("the rollout ended before the test killed its driver: %s (%s)", ro.Status, ro.Reason)
			}
			return err == nil && ro.Step == 1 && ro.Holder != "" // mid-step, at 25 % in eu-west
		})
		var killed *registrytest.Server
		for _, rep := range r.replicas {
			if strings.HasSuffix(holder, strings.TrimPrefix(rep.URL, "http://")) {
				killed = rep
			}
		}
		if killed == nil {
			t.Fatalf("holder %q is neither replica", holder)
		}
		killed.Proc.Kill()
		ro := waitStatus(t, r.admin, 90*time.Second)
		answers := l.end()
		if ro.Status != wire.RolloutSucceeded || ro.Holder == holder {
			t.Fatalf("status %s (%s), holder %s (killed %s)", ro.Status, ro.Reason, ro.Holder, holder)
		}
		failures(t, answers)
		entries, err := r.admin.Audit(ctx, url.Values{"model": {"sentiment"}, "since": {started.CreatedAt.Add(-time.Second).Format(time.RFC3339)}})
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		for _, e := range entries {
			if strings.HasPrefix(e.Action, "rollout_") && e.Version == "v4" && e.Result == "ok" {
				steps = append(steps, fmt.Sprintf("%s %s %s", e.Action, strings.Join(e.Regions, ","), firstField(e.Detail)))
			}
		}
		want := []string{
			"rollout_start eu-west 5%", "rollout_step eu-west 25%", "rollout_step eu-west 50%", "rollout_step eu-west 100%",
			"rollout_promote eu-west passed", "rollout_step us-east 5%", "rollout_step us-east 25%", "rollout_step us-east 50%",
			"rollout_step us-east 100%", "rollout_promote us-east passed",
		}
		t.Logf("killed %s at 25%% in eu-west; audit trail:\n%s", holder, strings.Join(steps, "\n"))
		if strings.Join(steps, "|") != strings.Join(want, "|") {
			t.Errorf("audit trail of the rollout:\n%s\nwant each step once:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
		}
		ch, _ := r.admin.GetChannel(ctx, "sentiment", "production", 0, 0)
		if ch.Resolve("eu-west") != "v4" || ch.Resolve("us-east") != "v4" {
			t.Errorf("channel after the rollout: %+v", ch)
		}
	})
}

// firstField is "5%" of "candidate at 5% in eu-west; …" and "passed" of
// "passed 100%: …".
func firstField(detail string) string {
	if s, ok := strings.CutPrefix(detail, "candidate at "); ok {
		return strings.Fields(s)[0]
	}
	return strings.Fields(detail + " -")[0]
}
