package edge

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/model/train"
)

// tinyServing trains a small model on clear-cut texts, with the labels
// flipped when flip is set (a broken candidate).
func tinyServing(t *testing.T, version string, flip bool) *Serving {
	t.Helper()
	var ex []train.Example
	for i, w := range []string{"great", "wonderful", "moving", "funny", "awful", "boring", "dull", "tedious"} {
		label := 1
		if i >= 4 {
			label = 0
		}
		if flip {
			label = 1 - label
		}
		for j := 0; j < 50; j++ {
			ex = append(ex, train.Example{Text: "a " + w + " film", Label: label})
		}
	}
	cfg := train.DefaultConfig()
	cfg.Name, cfg.Features.HashBits = "tiny", 10
	m, err := train.Fit(ex, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Serving{Predictor: m, Name: "sentiment", Version: version, Digest: m.Digest(), Source: "registry"}
}

// TestSplitIsStickyAndWeighted: a candidate at 10 % answers about a tenth
// of the routing keys, the same keys every time, and every answer names
// the version that served it; a path naming a held version gets it.
func TestSplitIsStickyAndWeighted(t *testing.T) {
	srv, c := newTestServer(t, Config{TrustedProxies: memPeer}) // a gateway sets the keys
	if err := srv.SetCandidate(&Candidate{Serving: tinyServing(t, "v2", false), Percent: 10}); err != nil {
		t.Fatal(err)
	}
	served := func(key string) string {
		r := call(t, c, "POST", "/v1/predict", `{"text":"a great film"}`, "X-Routing-Key", key)
		var out struct{ Version string }
		if r.code != 200 || json.Unmarshal([]byte(r.body), &out) != nil {
			t.Fatalf("%d %s", r.code, r.body)
		}
		return out.Version
	}
	const keys = 3000
	first := map[string]string{}
	candidate := 0
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("user-%d", i)
		v := served(key)
		first[key] = v
		if v == "v2" {
			candidate++
		}
	}
	if share := float64(candidate) / keys; share < 0.08 || share > 0.12 {
		t.Errorf("the candidate answered %.1f%% of the keys, want about 10%%", 100*share)
	}
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("user-%d", i)
		if v := served(key); v != first[key] {
			t.Fatalf("key %s moved from %s to %s", key, first[key], v)
		}
	}
	for _, v := range []string{"v1", "v2"} {
		r := call(t, c, "POST", "/v2/models/sentiment/versions/"+v+"/infer",
			`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a great film"]}]}`)
		if r.code != 200 || !strings.Contains(r.body, `"model_version":"`+v+`"`) {
			t.Errorf("infer naming %s: %d %s", v, r.code, r.body)
		}
	}
	srv.SetCandidate(nil)
	if v := served(firstKey(first, "v2")); v != "v1" {
		t.Errorf("after the candidate is removed, %s answers", v)
	}
}

// memPeer is the in-memory listener's peer address, as a trusted proxy.
var memPeer = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}

// TestClientsCannotSteerARollout: a client's own X-Routing-Key is ignored
// (its address picks its version, so it cannot choose one), and past
// RolloutClientRate a client's requests are answered but not counted in
// the figures a rollout step is judged on, whether it is named by its
// address or by a trusted gateway's routing key.
func TestClientsCannotSteerARollout(t *testing.T) {
	srv, c := newTestServer(t, Config{})
	srv.Swap(tinyServing(t, "steer-v1", false))
	if err := srv.SetCandidate(&Candidate{Serving: tinyServing(t, "steer-v2", false), Percent: 50}); err != nil {
		t.Fatal(err)
	}
	versions := map[string]int{}
	for i := range 200 {
		r := call(t, c, "POST", "/v1/predict", `{"text":"a great film"}`, "X-Routing-Key", fmt.Sprintf("pick-%d", i))
		var out struct{ Version string }
		json.Unmarshal([]byte(r.body), &out)
		versions[out.Version]++
	}
	if len(versions) != 1 {
		t.Errorf("a client's own routing keys reached %v: it can pick its version", versions)
	}

	srv, c = newTestServer(t, Config{TrustedProxies: memPeer, RolloutClientRate: 10})
	srv.Swap(tinyServing(t, "weigh-v1", false))
	if err := srv.SetCandidate(&Candidate{Serving: tinyServing(t, "weigh-v2", false)}); err != nil {
		t.Fatal(err)
	}
	counted := metrics.GetOrCreateCounter(`edge_version_requests_total{model="sentiment",version="weigh-v1"}`)
	labelled := metrics.GetOrCreateCounter(`edge_predictions_total{label="positive",model="sentiment",version="weigh-v1"}`)
	uncounted := metrics.GetOrCreateCounter(`edge_rollout_uncounted_requests_total`)
	send := func(n int, headers ...string) (uint64, uint64) {
		c0, u0 := counted.Get(), uncounted.Get()
		for range n {
			if r := call(t, c, "POST", "/v1/predict", `{"text":"a great film"}`, headers...); r.code != 200 {
				t.Fatalf("%d %s", r.code, r.body)
			}
		}
		return counted.Get() - c0, uncounted.Get() - u0
	}
	if got, left := send(50, "X-Forwarded-For", "203.0.113.7"); got > 11 || left < 39 {
		t.Errorf("one address, 50 requests: %d counted, %d left out; want at most 10 (and one refilled) counted", got, left)
	}
	if labelled.Get() > 11 {
		t.Errorf("%d of one client's predictions counted in the label shares, want at most 11", labelled.Get())
	}
	if got, _ := send(5, "X-Forwarded-For", "198.51.100.1"); got != 5 {
		t.Errorf("another address: %d of 5 counted", got)
	}
	if got, _ := send(30, "X-Routing-Key", "user-1"); got > 11 {
		t.Errorf("one routing key, 30 requests: %d counted, want at most 11", got)
	}
	c0 := counted.Get()
	for i := range 30 {
		call(t, c, "POST", "/v1/predict", `{"text":"a great film"}`, "X-Routing-Key", fmt.Sprintf("user-%d", 100+i))
	}
	if got := counted.Get() - c0; got != 30 {
		t.Errorf("30 users, a request each: %d counted", got)
	}
}

func firstKey(m map[string]string, version string) string {
	for k, v := range m {
		if v == version {
			return k
		}
	}
	return ""
}

// TestShadowCountsDisagreement: a flipped-label candidate in the shadow
// scores every text off the hot path; the answers are the stable
// version's, and the disagreement is counted (≥ 0.8).
func TestShadowCountsDisagreement(t *testing.T) {
	srv, c := newTestServer(t, Config{})
	srv.Swap(tinyServing(t, "v1", false))
	texts := []string{"a great film", "a dull film", "a wonderful film", "a tedious film"}
	want := map[string]string{}
	for _, text := range texts {
		want[text] = call(t, c, "POST", "/v1/predict", `{"text":"`+text+`"}`).body
	}
	if err := srv.SetCandidate(&Candidate{Serving: tinyServing(t, "v2-flipped", true), ShadowRate: 1}); err != nil {
		t.Fatal(err)
	}
	flipped := &Serving{Name: "sentiment", Version: "v2-flipped"}
	agree, disagree := agreement(flipped, true), agreement(flipped, false)
	const n = 200
	for i := 0; i < n; i++ {
		text := texts[i%len(texts)]
		r := call(t, c, "POST", "/v1/predict", `{"text":"`+text+`"}`)
		if label(r.body) != label(want[text]) || !strings.Contains(r.body, `"version":"v1"`) {
			t.Fatalf("with a shadow, %q got %s, want the stable answer %s", text, r.body, want[text])
		}
	}
	dropped := metrics.GetOrCreateCounter(`edge_shadow_dropped_total`)
	deadline := time.Now().Add(5 * time.Second)
	for agree.Get()+disagree.Get()+dropped.Get() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	scored := agree.Get() + disagree.Get()
	if scored == 0 {
		t.Fatal("the shadow scored nothing")
	}
	if rate := float64(disagree.Get()) / float64(scored); rate < 0.8 {
		t.Errorf("disagreement %.2f over %d shadow predictions, want ≥ 0.8", rate, scored)
	}
}

func label(body string) string {
	var out struct{ Label string }
	json.Unmarshal([]byte(body), &out)
	return out.Label
}
