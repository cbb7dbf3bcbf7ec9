package rollout

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/units"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// Counters are one edge's cumulative series of a rollout, keyed by kind,
// role ("stable" or "candidate") and label:
//
//	requests/<role>            edge_version_requests_total
//	errors/<role>              edge_version_errors_total
//	latency/<role>/<le>        edge_version_request_duration_seconds_bucket
//	label/<role>/<label>       edge_predictions_total
//	score/<role>/<le>          edge_prediction_score_ratio_bucket
//	shadow/candidate/<result>  edge_shadow_predictions_total (agree, disagree)
type Counters map[string]float64

const (
	roleStable    = "stable"
	roleCandidate = "candidate"
)

// delta returns now minus base, series by series; a series that went
// down belongs to a restarted edge and counts from zero.
func delta(now, base Counters) Counters {
	out := make(Counters, len(now))
	for k, v := range now {
		d := v - base[k]
		if d < 0 {
			d = v
		}
		out[k] = d
	}
	return out
}

// add sums c into total.
func (total Counters) add(c Counters) {
	for k, v := range c {
		total[k] += v
	}
}

// versionFigures reads one role's figures out of window counters.
func versionFigures(c Counters, role, version string) wire.VersionFigures {
	f := wire.VersionFigures{Version: version, Requests: c["requests/"+role], Errors: c["errors/"+role]}
	if f.Requests > 0 {
		f.ErrorRate = f.Errors / f.Requests
	}
	f.P99Seconds = quantile(buckets(c, "latency/"+role+"/"), 0.99)
	var predicted float64
	prefix := "label/" + role + "/"
	for k, v := range c {
		if strings.HasPrefix(k, prefix) {
			predicted += v
		}
	}
	if predicted > 0 {
		f.Labels = map[string]float64{}
		for k, v := range c {
			if label, ok := strings.CutPrefix(k, prefix); ok {
				f.Labels[label] = v / predicted
			}
		}
	}
	return f
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// buckets returns the cumulative buckets under prefix, by bound.
func buckets(c Counters, prefix string) []bucket {
	var out []bucket
	for k, v := range c {
		s, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		out = append(out, bucket{le, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// quantile estimates the q-quantile of cumulative buckets the way
// Prometheus's histogram_quantile does: linear within the bucket, the
// highest finite bound when it falls in +Inf.
func quantile(bs []bucket, q float64) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.count == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.count-below)
		}
		lower, below = b.le, b.count
	}
	return lower
}

// psi is the population stability index of the candidate's score
// histogram against the stable one's: sum over buckets of
// (c - s) * ln(c / s), with empty buckets floored at 0.0001.
func psi(stable, candidate []bucket) float64 {
	ps, pc := shares(stable), shares(candidate)
	if ps == nil || pc == nil {
		return 0
	}
	var sum float64
	for le, s := range ps {
		c := max(pc[le], 1e-4)
		s = max(s, 1e-4)
		sum += (c - s) * math.Log(c/s)
	}
	return sum
}

// counts turns cumulative buckets into each bucket's own count.
func counts(bs []bucket) map[float64]float64 {
	out := map[float64]float64{}
	prev := 0.0
	for _, b := range bs {
		out[b.le] = b.count - prev
		prev = b.count
	}
	return out
}

// shares turns cumulative buckets into each bucket's share.
func shares(bs []bucket) map[float64]float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return nil
	}
	total := bs[len(bs)-1].count
	out := counts(bs)
	for le, n := range out {
		out[le] = n / total
	}
	return out
}

// labelShift is the largest difference of a label's share between the
// two, and that label.
func labelShift(stable, candidate map[string]float64) (float64, string) {
	var worst float64
	var which string
	for _, m := range []map[string]float64{stable, candidate} {
		for label := range m {
			if d := math.Abs(candidate[label] - stable[label]); d > worst || which == "" {
				worst, which = d, label
			}
		}
	}
	return worst, which
}

// zCritical is the z-score a difference must reach to count: p < 0.001,
// one-sided. A threshold trips only when the figures exceed it and the
// excess is this unlikely to be sampling noise, so a step with few
// requests is not rolled back for a coin that fell badly.
const zCritical = 3.09

// minLook bounds how early in a step a look counts (see zBound).
const minLook = 0.02

// zBound is the z-score a difference must reach at a look made a share
// look (0..1) of the way through the step: zCritical at the step's end,
// more before it, as zCritical/√look (an O'Brien-Fleming boundary). The
// controller looks at every tick; testing each look at zCritical would
// find sampling noise at some look of many a long step and roll back a
// good candidate. With the boundary the step as a whole keeps its false
// alarms near p = 0.001, while a broken candidate still stops within
// seconds: its z grows with every request it answers.
func zBound(look float64) float64 {
	return zCritical / math.Sqrt(min(1, max(look, minLook)))
}

// judge computes a window's figures and names the thresholds they trip.
// enough reports whether the candidate answered enough requests for the
// step to pass.
func judge(window Counters, stableVersions, candidate string, th wire.Thresholds, look float64) (f wire.Figures, enough bool) {
	z := zBound(look)
	f.Stable = versionFigures(window, roleStable, stableVersions)
	f.Candidate = versionFigures(window, roleCandidate, candidate)
	agree, disagree := window["shadow/candidate/agree"], window["shadow/candidate/disagree"]
	f.ShadowCompared = agree + disagree
	if f.ShadowCompared > 0 {
		f.Disagreement = disagree / f.ShadowCompared
	}
	nc, ns := f.Candidate.Requests, f.Stable.Requests
	enough = nc >= float64(th.MinRequests)
	comparable := enough && ns >= float64(th.MinRequests)
	breach := func(format string, args ...any) { f.Breaches = append(f.Breaches, fmt.Sprintf(format, args...)) }
	if enough && f.Candidate.ErrorRate-f.Stable.ErrorRate > th.MaxErrorRate &&
		zOver(f.Candidate.ErrorRate, nc, f.Stable.ErrorRate, ns, th.MaxErrorRate) > z {
		breach("error rate %s against the stable version's %s (at most +%s)", units.Percent(f.Candidate.ErrorRate), units.Percent(f.Stable.ErrorRate),
			units.Percent(th.MaxErrorRate))
	}
	if comparable && slowerThan(window, f.Stable.P99Seconds, th, z) {
		breach("p99 latency %s against the stable version's %s (at most %gx, or +%v)", units.Seconds(f.Candidate.P99Seconds),
			units.Seconds(f.Stable.P99Seconds), th.MaxLatencyRatio, time.Duration(th.LatencyFloor))
	}
	if comparable {
		var label string
		f.LabelShift, label = labelShift(f.Stable.Labels, f.Candidate.Labels)
		pc, ps := f.Candidate.Labels[label], f.Stable.Labels[label]
		if f.LabelShift > th.MaxLabelShift &&
			max(zOver(pc, nc, ps, ns, th.MaxLabelShift), zOver(ps, ns, pc, nc, th.MaxLabelShift)) > z {
			breach("label %q's share moved by %.3f (at most %g)", label, f.LabelShift, th.MaxLabelShift)
		}
		cs, ss := buckets(window, "score/"+roleCandidate+"/"), buckets(window, "score/"+roleStable+"/")
		f.PSI = psi(ss, cs)
		if f.PSI > th.MaxPSI && psiBeyond(ss, cs, th.MaxPSI, z) {
			breach("score distribution PSI %.3f (at most %g)", f.PSI, th.MaxPSI)
		}
	}
	if f.ShadowCompared >= float64(th.MinShadow) && f.Disagreement > th.MaxDisagreement &&
		zOne(f.Disagreement, th.MaxDisagreement, f.ShadowCompared) > z {
		breach("shadow disagreement %.3f over %.0f texts (at most %g)", f.Disagreement, f.ShadowCompared, th.MaxDisagreement)
	}
	return f, enough
}

// slowerThan reports whether the candidate's p99 is above the stable
// one's times MaxLatencyRatio (and above it by more than LatencyFloor):
// whether more than 1 % of its requests took longer than that, beyond
// sampling noise (z).
func slowerThan(window Counters, stableP99 float64, th wire.Thresholds, z float64) bool {
	limit := max(stableP99*th.MaxLatencyRatio, stableP99+timeSeconds(th.LatencyFloor))
	bs := buckets(window, "latency/"+roleCandidate+"/")
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return false
	}
	n := bs[len(bs)-1].count
	slow := n - cdf(bs, limit)
	return slow/n > 0.01 && tooMany(slow, n, 0.01, z)
}

// tooMany reports whether k of n observations past a line that a share p0
// of them may pass is too many to be chance at z. Where n·p0 is under 10
// the normal approximation does not hold (one slow request of five scores
// z ≈ 4.3 against 1 %, yet one step in twenty would show it by chance),
// so there the exact binomial tail is used, with k rounded down.
func tooMany(k, n, p0, z float64) bool {
	if n*p0 >= 10 {
		return zOne(k/n, p0, n) > z
	}
	return binomialTail(int(math.Floor(k+1e-9)), int(n), p0) < 0.5*math.Erfc(z/math.Sqrt2)
}

// binomialTail is the chance of k or more successes in n trials of chance p.
func binomialTail(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	lgN, _ := math.Lgamma(float64(n + 1))
	sum := 0.0
	for j := k; j <= n; j++ {
		lgJ, _ := math.Lgamma(float64(j + 1))
		lgRest, _ := math.Lgamma(float64(n - j + 1))
		sum += math.Exp(lgN - lgJ - lgRest + float64(j)*math.Log(p) + float64(n-j)*math.Log1p(-p))
	}
	return sum
}

// cdf estimates how many observations are at most x, linear within a
// bucket.
func cdf(bs []bucket, x float64) float64 {
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if x <= b.le {
			if math.IsInf(b.le, 1) {
				return below
			}
			return below + (b.count-below)*(x-lower)/(b.le-lower)
		}
		lower, below = b.le, b.count
	}
	return below
}

// zOne is the z-score of an observed proportion p over n against p0.
func zOne(p, p0, n float64) float64 {
	if n <= 0 || p0 <= 0 || p0 >= 1 {
		return 0
	}
	return (p - p0) / math.Sqrt(p0*(1-p0)/n)
}

// zOver is the z-score of proportion p1 (over n1) exceeding p2 (over n2)
// by more than margin: how sure the figures are that the true difference
// is past the threshold, not merely above zero. Each share is taken with
// one success and one failure added (Agresti-Caffo), so that shares of 0
// or 1 keep a spread. With n2 = 0 (the 100 % step, where the stable
// version answers nothing) p2 is taken as 0.
func zOver(p1, n1, p2, n2, margin float64) float64 {
	if n1 <= 0 {
		return 0
	}
	a1 := (p1*n1 + 1) / (n1 + 2)
	variance := a1 * (1 - a1) / (n1 + 2)
	a2 := 0.0
	if n2 > 0 {
		a2 = (p2*n2 + 1) / (n2 + 2)
		variance += a2 * (1 - a2) / (n2 + 2)
	}
	return (a1 - a2 - margin) / math.Sqrt(variance)
}

// psiBeyond reports whether the candidate's score histogram is further
// from the stable one's than margin (a PSI) by more than sampling noise
// explains. It works over the k buckets either side filled, with half a
// count added to each, so that a bucket one small sample happened to
// miss does not weigh as if it were impossible (the 0.0001 floor of the
// reported PSI would make it weigh about 0.9 on its own). N·PSI, N the
// two samples' effective size, is then about chi-squared with k-1
// degrees of freedom and noncentrality N·margin when the true PSI is
// margin; the test is that distribution's normal approximation at z.
func psiBeyond(stable, candidate []bucket, margin, z float64) bool {
	both := map[float64][2]float64{} // bound: stable's count, candidate's
	for i, bs := range [][]bucket{stable, candidate} {
		for le, n := range counts(bs) {
			v := both[le]
			v[i] = n
			both[le] = v
		}
	}
	var filled []float64
	var ns, nc float64
	for le, v := range both {
		if v[0]+v[1] > 0 {
			filled = append(filled, le)
			ns, nc = ns+v[0], nc+v[1]
		}
	}
	slices.Sort(filled) // the same sum on every run
	k := float64(len(filled))
	if k < 2 || ns == 0 || nc == 0 {
		return false
	}
	var sum float64
	for _, le := range filled {
		s := (both[le][0] + 0.5) / (ns + k/2)
		c := (both[le][1] + 0.5) / (nc + k/2)
		sum += (c - s) * math.Log(c/s)
	}
	n := nc * ns / (nc + ns)
	df, lambda := k-1, n*margin
	return n*sum > df+lambda+z*math.Sqrt(2*(df+2*lambda))
}

func timeSeconds(d wire.Duration) float64 { return float64(d) / 1e9 }

// stableNames lists the stable versions of regions, for the figures.
func stableNames(stable map[string]string, regions []string) string {
	var out []string
	for _, r := range regions {
		if v := stable[r]; v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return strings.Join(out, ",")
}
