package rollout

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// exposition is what an edge serving v1 with candidate v2 prints, in the
// format of VictoriaMetrics/metrics.
const exposition = `# HELP ignored
edge_requests_total{route="/v1/predict",code="200"} 900
edge_version_requests_total{version="v1"} 800
edge_version_requests_total{model="m",version="v2"} 100
edge_version_requests_total{model="other",version="v1"} 5000
edge_version_errors_total{model="other",version="v2"} 70
edge_version_errors_total{version="v1"} 8
edge_version_errors_total{version="v2"} 20
edge_version_request_duration_seconds_bucket{version="v1",le="1e-05"} 400
edge_version_request_duration_seconds_bucket{version="v1",le="2.5e-05"} 800
edge_version_request_duration_seconds_bucket{version="v1",le="+Inf"} 800
edge_version_request_duration_seconds_bucket{version="v2",le="1e-05"} 0
edge_version_request_duration_seconds_bucket{version="v2",le="0.001"} 50
edge_version_request_duration_seconds_bucket{version="v2",le="0.01"} 100
edge_version_request_duration_seconds_bucket{version="v2",le="+Inf"} 100
edge_predictions_total{label="negative",version="v1"} 400
edge_predictions_total{label="positive",version="v1"} 400
edge_predictions_total{label="negative",version="v2"} 90
edge_predictions_total{label="positive",version="v2"} 10
edge_prediction_score_ratio_bucket{version="v1",le="0.55"} 400
edge_prediction_score_ratio_bucket{version="v1",le="1"} 800
edge_prediction_score_ratio_bucket{version="v1",le="+Inf"} 800
edge_prediction_score_ratio_bucket{version="v2",le="0.55"} 0
edge_prediction_score_ratio_bucket{version="v2",le="1"} 100
edge_prediction_score_ratio_bucket{version="v2",le="+Inf"} 100
edge_shadow_predictions_total{version="v2",result="agree"} 10
edge_shadow_predictions_total{version="v2",result="disagree"} 30
edge_shadow_predictions_total{version="v9",result="disagree"} 1000
edge_model_info{model="m",version="v1",digest="sha256:x",source="registry"} 1
`

func TestParseMetrics(t *testing.T) {
	c, err := parseMetrics(strings.NewReader(exposition), "m", "v1", "v2")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"requests/stable": 800, "errors/candidate": 20, "latency/candidate/0.001": 50, "label/stable/positive": 400,
		"score/candidate/0.55": 0, "shadow/candidate/disagree": 30,
	}
	for k, v := range want {
		if got, ok := c[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for k := range c {
		if strings.Contains(k, "v9") || strings.HasPrefix(k, "model") {
			t.Errorf("kept %s, which is not the rollout's", k)
		}
	}
}

func TestParseSampleRejectsGarbage(t *testing.T) {
	for _, line := range []string{`x{a="b} 1`, `x{a=b} 1`, `x 1e`, `{a="b"} 1`, `x{a="b"}`, `x{a="\`} {
		if _, _, _, ok := parseSample(line); ok {
			t.Errorf("parsed %q", line)
		}
	}
	name, labels, v, ok := parseSample(`x{a="q\"uote",b="2"} 3.5 1700000000`)
	if !ok || name != "x" || labels["a"] != `q"uote` || labels["b"] != "2" || v != 3.5 {
		t.Errorf("got %q %v %v %v", name, labels, v, ok)
	}
}

func TestJudge(t *testing.T) {
	c, err := parseMetrics(strings.NewReader(exposition), "m", "v1", "v2")
	if err != nil {
		t.Fatal(err)
	}
	th, _ := withDefaults(wire.RolloutSpec{Version: "v2", Regions: []string{"eu"}})
	f, enough := judge(c, "v1", "v2", th.Thresholds, 1)
	if !enough {
		t.Fatal("100 candidate requests should be enough with the default 100")
	}
	if f.Candidate.ErrorRate != 0.2 || f.Stable.ErrorRate != 0.01 {
		t.Errorf("error rates %v and %v", f.Candidate.ErrorRate, f.Stable.ErrorRate)
	}
	if math.Abs(f.Disagreement-0.75) > 1e-9 || f.ShadowCompared != 40 {
		t.Errorf("disagreement %v over %v", f.Disagreement, f.ShadowCompared)
	}
	if math.Abs(f.LabelShift-0.4) > 1e-9 {
		t.Errorf("label shift %v, want 0.4", f.LabelShift)
	}
	// Candidate p99 falls in (0.001, 0.01]; stable's in (1e-05, 2.5e-05].
	if f.Candidate.P99Seconds <= 0.001 || f.Candidate.P99Seconds > 0.01 || f.Stable.P99Seconds > 2.5e-5 {
		t.Errorf("p99 %v and %v", f.Candidate.P99Seconds, f.Stable.P99Seconds)
	}
	if f.PSI < 1 {
		t.Errorf("PSI %v for histograms with nothing in common", f.PSI)
	}
	for _, want := range []string{"error rate", "p99 latency", "share moved", "PSI", "shadow disagreement"} {
		found := false
		for _, b := range f.Breaches {
			found = found || strings.Contains(b, want)
		}
		if !found {
			t.Errorf("no %q breach in %q", want, f.Breaches)
		}
	}
	// The same figures with the candidate as good as stable trip nothing.
	same := Counters{}
	for k, v := range c {
		if strings.Contains(k, "/stable") {
			same[k] = v
			same[strings.Replace(k, "/stable", "/candidate", 1)] = v / 8
		}
	}
	same["shadow/candidate/agree"] = 100
	if f, enough := judge(same, "v1", "v2", th.Thresholds, 1); !enough || len(f.Breaches) != 0 || f.PSI > 1e-9 || f.LabelShift > 1e-9 {
		t.Errorf("a twin of the stable version: enough %v, breaches %q, PSI %v, label shift %v", enough, f.Breaches, f.PSI, f.LabelShift)
	}
	// Sampling noise is not a breach: 62 % of 100 predictions against
	// 50 % of 1,000 moved by more than 0.1, but not by more than chance
	// gives beyond 0.1.
	noise := Counters{"requests/candidate": 100, "requests/stable": 1000, "label/candidate/pos": 62, "label/candidate/neg": 38,
		"label/stable/pos": 500, "label/stable/neg": 500, "errors/candidate": 1}
	if f, _ := judge(noise, "v1", "v2", th.Thresholds, 1); len(f.Breaches) != 0 || f.LabelShift < 0.11 {
		t.Errorf("noise: breaches %q, label shift %v", f.Breaches, f.LabelShift)
	}
	noise["label/candidate/pos"], noise["label/candidate/neg"] = 80, 20
	if f, _ := judge(noise, "v1", "v2", th.Thresholds, 1); len(f.Breaches) != 1 {
		t.Errorf("80 %% against 50 %%: breaches %q", f.Breaches)
	}
	// The same 80 % a tenth of the way through the step is not yet
	// beyond the boundary (z 4.5 < 3.09/√0.1 = 9.8).
	if f, _ := judge(noise, "v1", "v2", th.Thresholds, 0.1); len(f.Breaches) != 0 {
		t.Errorf("80 %% against 50 %% early in the step: breaches %q", f.Breaches)
	}
	// At the 100 % step the stable version answers nothing; the
	// candidate's errors are judged against none.
	full := Counters{"requests/candidate": 200, "errors/candidate": 20}
	if f, _ := judge(full, "v1", "v2", th.Thresholds, 1); len(f.Breaches) != 1 || !strings.Contains(f.Breaches[0], "error rate") {
		t.Errorf("10 %% errors with no stable requests: breaches %q", f.Breaches)
	}
	full["errors/candidate"] = 1
	if f, _ := judge(full, "v1", "v2", th.Thresholds, 1); len(f.Breaches) != 0 {
		t.Errorf("0.5 %% errors with no stable requests: breaches %q", f.Breaches)
	}
	// Too few requests: nothing judged on them, the step cannot pass,
	// but the shadow still speaks.
	few := Counters{"requests/candidate": 5, "errors/candidate": 5, "requests/stable": 1000, "shadow/candidate/disagree": 40}
	f, enough = judge(few, "v1", "v2", th.Thresholds, 1)
	if enough || len(f.Breaches) != 1 || !strings.Contains(f.Breaches[0], "shadow") {
		t.Errorf("5 candidate requests: enough %v, breaches %q", enough, f.Breaches)
	}
}

func TestDeltaCountsRestartsFromZero(t *testing.T) {
	d := delta(Counters{"a": 10, "b": 3, "c": 7}, Counters{"a": 4, "b": 9})
	if d["a"] != 6 || d["b"] != 3 || d["c"] != 7 {
		t.Errorf("delta = %v", d)
	}
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{0.1, 50}, {0.2, 100}, {math.Inf(1), 100}}
	if q := quantile(bs, 0.5); math.Abs(q-0.1) > 1e-9 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(bs, 0.75); math.Abs(q-0.15) > 1e-9 {
		t.Errorf("p75 = %v", q)
	}
	if q := quantile([]bucket{{0.1, 0}, {math.Inf(1), 10}}, 0.99); q != 0.1 {
		t.Errorf("p99 in +Inf = %v, want the highest finite bound", q)
	}
	if q := quantile(nil, 0.99); q != 0 {
		t.Errorf("empty = %v", q)
	}
}

func TestSpecDefaultsAndRefusals(t *testing.T) {
	s, err := withDefaults(wire.RolloutSpec{Version: "v2", Regions: []string{"eu-west", "us-east"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Steps) != 4 || time.Duration(s.Interval) != time.Minute || s.Shadow != 0.1 || s.Thresholds.MaxPSI != 0.25 {
		t.Errorf("defaults: %+v", s)
	}
	for name, bad := range map[string]wire.RolloutSpec{
		"no regions":        {Version: "v2"},
		"twice":             {Version: "v2", Regions: []string{"eu", "eu"}},
		"falling steps":     {Version: "v2", Regions: []string{"eu"}, Steps: []float64{50, 25, 100}},
		"not ending at 100": {Version: "v2", Regions: []string{"eu"}, Steps: []float64{5, 50}},
		"over 100":          {Version: "v2", Regions: []string{"eu"}, Steps: []float64{5, 150}},
		"short interval":    {Version: "v2", Regions: []string{"eu"}, Interval: wire.Duration(time.Millisecond)},
		"shadow over 1":     {Version: "v2", Regions: []string{"eu"}, Shadow: 2},
		"negative":          {Version: "v2", Regions: []string{"eu"}, Thresholds: wire.Thresholds{MaxPSI: -1}},
		"bad version":       {Version: "../x", Regions: []string{"eu"}},
		"bad region":        {Version: "v2", Regions: []string{"EU WEST"}},
	} {
		if _, err := withDefaults(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLooksKeepFalseAlarmsRare simulates steps the controller looks at
// 50 times each, 2 candidate requests a look (5 % of the traffic), and
// counts the steps rolled back by a label-shift breach. A candidate whose
// label share sits right at the threshold (60 % "positive" against 50 %)
// is the worst case the alarm rate is set for: testing every look at
// zCritical would roll back far more of those than the one in a thousand
// zCritical promises; the boundary does not. A twin of the stable version
// is rolled back never: the test is of the shift beyond the threshold,
// not beyond zero. The random source is seeded: the counts are the same
// on every run.
func TestLooksKeepFalseAlarmsRare(t *testing.T) {
	th, _ := withDefaults(wire.RolloutSpec{Version: "v2", Regions: []string{"eu"}})
	th.Thresholds.MinRequests = 20
	const steps, looks, perLook = 2000, 50, 40
	simulate := func(candidatePositive float64) (bounded, flat int) {
		rng := rand.New(rand.NewPCG(7, 7))
		for range steps {
			c := Counters{}
			b, f := false, false
			for look := 1; look <= looks; look++ {
				for range perLook {
					role, positive := roleStable, 0.5
					if rng.IntN(20) == 0 {
						role, positive = roleCandidate, candidatePositive
					}
					label := "neg"
					if rng.Float64() < positive {
						label = "pos"
					}
					c["requests/"+role]++
					c["label/"+role+"/"+label]++
				}
				g, _ := judge(c, "v1", "v2", th.Thresholds, float64(look)/looks)
				b = b || len(g.Breaches) > 0
				g, _ = judge(c, "v1", "v2", th.Thresholds, 1) // as if every look were the last
				f = f || len(g.Breaches) > 0
			}
			if b {
				bounded++
			}
			if f {
				flat++
			}
		}
		return bounded, flat
	}
	bounded, flat := simulate(0.6)
	t.Logf("candidates at the threshold rolled back: %d of %d with the boundary, %d testing every look at z %.2f", bounded, steps, flat, zCritical)
	if bounded > steps/200 {
		t.Errorf("%d of %d candidates at the threshold rolled back with the boundary, want at most 0.5 %%", bounded, steps)
	}
	if flat <= bounded {
		t.Errorf("the simulation does not show the problem the boundary solves: %d flat, %d bounded", flat, bounded)
	}
	if twins, _ := simulate(0.5); twins != 0 {
		t.Errorf("%d of %d twins of the stable version rolled back", twins, steps)
	}
}

// TestPSIJudgesTheExcess simulates 5 % steps of the score histogram
// alone, ten looks of 170 requests each. Eight texts with scores in
// eight buckets: a small candidate sample often misses one, which the
// reported PSI's 0.0001 floor weighs at about 0.9; that alone must not
// roll back a twin of the stable version. A candidate that moved every
// text a bucket up is still stopped within the step. Seeded: the counts
// are the same on every run.
func TestPSIJudgesTheExcess(t *testing.T) {
	th, _ := withDefaults(wire.RolloutSpec{Version: "v2", Regions: []string{"eu"}})
	th.Thresholds.MinRequests = 20
	bounds := []string{"0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95", "0.99", "1", "+Inf"}
	const steps, looks, perLook = 1000, 10, 170
	simulate := func(shift int) (stopped int) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range steps {
			c := Counters{}
			for look := 1; look <= looks; look++ {
				for range perLook {
					role, bucket := roleStable, 2+rng.IntN(8)
					if rng.IntN(20) == 0 {
						role, bucket = roleCandidate, bucket+shift
					}
					c["requests/"+role]++
					for _, le := range bounds[bucket:] {
						c["score/"+role+"/"+le]++
					}
				}
				if f, _ := judge(c, "v1", "v2", th.Thresholds, float64(look)/looks); len(f.Breaches) > 0 {
					stopped++
					break
				}
			}
		}
		return stopped
	}
	twins, moved := simulate(0), simulate(1)
	t.Logf("stopped within the step: %d of %d twins, %d of %d candidates a bucket higher", twins, steps, moved, steps)
	if twins != 0 {
		t.Errorf("%d of %d twins of the stable version rolled back on the score histogram", twins, steps)
	}
	if moved < steps*95/100 {
		t.Errorf("%d of %d candidates scoring a bucket higher stopped within the step, want 95 %%", moved, steps)
	}
}

// TestFewSlowRequestsAreNotABreach: with a handful of requests the p99 is
// their slowest, and one request held up by a busy machine is no reason to
// roll back; every one of them slow is.
func TestFewSlowRequestsAreNotABreach(t *testing.T) {
	th := wire.Thresholds{MinRequests: 5, MaxLatencyRatio: 2, LatencyFloor: wire.Duration(250 * time.Microsecond),
		MaxErrorRate: 1, MaxLabelShift: 1, MaxPSI: 100, MaxDisagreement: 1}
	window := func(slow float64) Counters {
		return Counters{"requests/candidate": 5, "requests/stable": 8,
			"latency/stable/0.0005": 8, "latency/stable/0.01": 8, "latency/stable/+Inf": 8,
			"latency/candidate/0.0005": 5 - slow, "latency/candidate/0.01": 5, "latency/candidate/+Inf": 5}
	}
	if f, _ := judge(window(1), "v1", "v2", th, 1); len(f.Breaches) != 0 {
		t.Errorf("1 slow request of 5: breaches %q", f.Breaches)
	}
	if f, _ := judge(window(5), "v1", "v2", th, 1); len(f.Breaches) != 1 || !strings.Contains(f.Breaches[0], "p99") {
		t.Errorf("5 slow requests of 5: breaches %q", f.Breaches)
	}
	// The exact tail against the normal one where both hold.
	if p := binomialTail(1, 5, 0.01); math.Abs(p-(1-math.Pow(0.99, 5))) > 1e-12 {
		t.Errorf("P(X ≥ 1 | 5, 0.01) = %v", p)
	}
	if !tooMany(30, 1000, 0.01, zCritical) || tooMany(12, 1000, 0.01, zCritical) {
		t.Error("30 of 1,000 past a 1 % line should be too many, 12 not")
	}
}

// TestSamplesAreBounded: a long step keeps at most wire.MaxSamples
// samples, spanning the whole step at a coarser resolution.
func TestSamplesAreBounded(t *testing.T) {
	var samples []wire.FigureSample
	for i := range 1000 {
		samples = wire.AddSample(samples, wire.Figures{LabelShift: float64(i)}, float64(i))
	}
	if len(samples) > wire.MaxSamples || len(samples) < wire.MaxSamples/2 {
		t.Fatalf("%d samples", len(samples))
	}
	if first, last := samples[0].Seconds, samples[len(samples)-1].Seconds; first != 0 || last != 999 {
		t.Errorf("samples span %v to %v, want the step's start to 999", first, last)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].Seconds <= samples[i-1].Seconds {
			t.Fatalf("samples out of order at %d", i)
		}
	}
}
