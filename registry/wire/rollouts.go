package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// Rollout statuses. Running and Paused are active; the others are final.
const (
	RolloutRunning    = "running"
	RolloutPaused     = "paused"
	RolloutSucceeded  = "succeeded"
	RolloutRolledBack = "rolled_back" // an analysis breach sent the candidate back to 0 %
	RolloutAborted    = "aborted"     // an operator stopped it, or the channel was moved outside it
)

// RolloutActive reports whether a rollout in status still runs.
func RolloutActive(status string) bool { return status == RolloutRunning || status == RolloutPaused }

// Duration is a time.Duration written in JSON as Go's duration text
// ("1m30s").
type Duration time.Duration

// String is d as "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("a duration is text like \"1m30s\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration is text like \"1m30s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// RolloutSpec is what an operator asks for: move Version, in steps of
// candidate share, through Regions wave by wave, judging each step.
type RolloutSpec struct {
	Version string `json:"version"`
	// Regions is the wave plan: Regions[0] is the canary region and goes
	// through every step alone; the others then go through them together.
	Regions []string `json:"regions"`
	// Steps are the candidate's shares in percent, rising, ending at 100
	// (default 5, 25, 50, 100).
	Steps []float64 `json:"steps,omitempty"`
	// Interval is how long each step lasts before it is judged and the
	// next one starts (default 1m).
	Interval Duration `json:"interval,omitempty"`
	// Shadow is the share of the stable version's requests the candidate
	// scores in the shadow, for the disagreement check (default 0.1).
	Shadow     float64    `json:"shadow,omitempty"`
	Thresholds Thresholds `json:"thresholds"`
	Reason     string     `json:"reason,omitempty"`
	// Force skips the quality gate of production channels, as a forced
	// promote does.
	Force bool `json:"force,omitempty"`
}

// Thresholds trip an automatic rollback; zero fields take the defaults
// in docs/ROLLOUTS.md.
type Thresholds struct {
	// MinRequests is how many requests the candidate must answer in a
	// step before its error rate, latency and predictions are judged, and
	// before the step may pass.
	MinRequests int `json:"min_requests,omitempty"`
	// MaxErrorRate is how far the candidate's 5xx rate may exceed the
	// stable version's.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxLatencyRatio is how many times the stable version's p99 the
	// candidate's p99 may be, once the two differ by more than
	// LatencyFloor.
	MaxLatencyRatio float64  `json:"max_latency_ratio,omitempty"`
	LatencyFloor    Duration `json:"latency_floor,omitempty"`
	// MaxLabelShift is how far any label's share of the candidate's
	// predictions may be from its share of the stable version's.
	MaxLabelShift float64 `json:"max_label_shift,omitempty"`
	// MaxPSI bounds the population stability index between the two
	// versions' score histograms.
	MaxPSI float64 `json:"max_psi,omitempty"`
	// MaxDisagreement bounds the share of shadow predictions whose label
	// differs from the stable version's, judged once MinShadow texts were
	// compared.
	MaxDisagreement float64 `json:"max_disagreement,omitempty"`
	MinShadow       int     `json:"min_shadow,omitempty"`
}

// Rollout is a rollout's state as the registry stores it and the admin
// API returns it.
type Rollout struct {
	Model   string      `json:"model"`
	Channel string      `json:"channel"`
	Spec    RolloutSpec `json:"spec"`
	Status  string      `json:"status"`
	// Wave indexes the wave plan (0: the canary region) and Step the
	// steps; Percent is the candidate's share in the wave's regions now.
	Wave        int       `json:"wave"`
	Step        int       `json:"step"`
	Percent     float64   `json:"percent"`
	StepStarted time.Time `json:"step_started"`
	// Stable is each region's target when the rollout started: what a
	// rollback restores.
	Stable map[string]string `json:"stable"`
	// History is every step taken, with the figures it was judged on.
	History []RolloutStep `json:"history"`
	// Figures are the running step's figures so far, and Samples how they
	// moved over the step (for charts).
	Figures   *Figures       `json:"figures,omitempty"`
	Samples   []FigureSample `json:"samples,omitempty"`
	Reason    string         `json:"reason,omitempty"` // why it ended or paused
	Actor     string         `json:"actor"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
	// Holder is the registry replica driving the rollout while its lease
	// lasts.
	Holder     string    `json:"holder,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	// Pending are the actions decided by this revision but not yet
	// applied to the channel and audited; whoever drives next finishes
	// them.
	Pending []RolloutAction `json:"pending,omitempty"`
	// Baseline holds each edge's counters when the step started.
	Baseline map[string]map[string]float64 `json:"baseline,omitempty"`
	Revision uint64                        `json:"revision"` // filled in on read
}

// WaveRegions returns the regions of wave w.
func (r Rollout) WaveRegions(w int) []string {
	switch {
	case len(r.Spec.Regions) == 0 || w > 1:
		return nil
	case w == 0:
		return r.Spec.Regions[:1]
	default:
		return r.Spec.Regions[1:]
	}
}

// Waves is how many waves the plan has: the canary region, then the rest.
func (r Rollout) Waves() int { return min(len(r.Spec.Regions), 2) }

// RolloutStep is one step taken: the candidate's share in a wave's
// regions, how long it ran, and how it ended.
type RolloutStep struct {
	Wave    int       `json:"wave"`
	Regions []string  `json:"regions"`
	Percent float64   `json:"percent"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// Outcome is "passed", "breached" (rolled back), "aborted" or
	// "superseded" (the channel was moved outside the rollout).
	Outcome string         `json:"outcome"`
	Figures *Figures       `json:"figures,omitempty"`
	Samples []FigureSample `json:"samples,omitempty"`
}

// MaxSamples bounds a step's samples: when they are full every other one
// is dropped and the spacing doubles, so a long step keeps its whole span,
// evenly, at a coarser resolution.
const MaxSamples = 64

// FigureSample is a step's figures at one moment: what the console's
// charts draw. Seconds count from the step's start.
type FigureSample struct {
	Seconds            float64 `json:"s"`
	CandidateRequests  float64 `json:"cand_requests"`
	CandidateErrorRate float64 `json:"cand_error_rate"`
	StableErrorRate    float64 `json:"stable_error_rate"`
	CandidateP99       float64 `json:"cand_p99_seconds"`
	StableP99          float64 `json:"stable_p99_seconds"`
	LabelShift         float64 `json:"label_shift"`
	Disagreement       float64 `json:"disagreement"`
}

// AddSample records f, taken seconds into the step, in samples, within
// MaxSamples. A sample closer to the one before the last than the
// samples' spacing replaces the last, so the newest figures are always
// there and the spacing stays even.
func AddSample(samples []FigureSample, f Figures, seconds float64) []FigureSample {
	s := FigureSample{Seconds: seconds, CandidateRequests: f.Candidate.Requests,
		CandidateErrorRate: f.Candidate.ErrorRate, StableErrorRate: f.Stable.ErrorRate,
		CandidateP99: f.Candidate.P99Seconds, StableP99: f.Stable.P99Seconds,
		LabelShift: f.LabelShift, Disagreement: f.Disagreement}
	if n := len(samples); n >= 3 && seconds-samples[n-2].Seconds < samples[1].Seconds-samples[0].Seconds {
		samples[n-1] = s
		return samples
	}
	if len(samples) >= MaxSamples {
		kept := samples[:0]
		for i := 0; i < len(samples); i += 2 {
			kept = append(kept, samples[i])
		}
		samples = kept
	}
	return append(samples, s)
}

// RolloutAction is a change a rollout makes to its channel, with the
// audit entry that records it.
type RolloutAction struct {
	Kind    string    `json:"kind"` // start, step, promote, rollback, abort, pause, resume
	Seq     uint64    `json:"seq"`  // the rollout revision that decided it: the channel's fence
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Regions []string  `json:"regions,omitempty"`
	Percent float64   `json:"percent"`
	Detail  string    `json:"detail,omitempty"`
}

// Figures compare the candidate with the stable version over one window
// of one step, summed over the edges of the wave's regions.
type Figures struct {
	WindowSeconds float64        `json:"window_seconds"`
	Edges         int            `json:"edges"`
	EdgeErrors    []string       `json:"edge_errors,omitempty"`
	Stable        VersionFigures `json:"stable"`
	Candidate     VersionFigures `json:"candidate"`
	// ShadowCompared texts were scored by both; Disagreement is the share
	// whose labels differed.
	ShadowCompared float64 `json:"shadow_compared"`
	Disagreement   float64 `json:"disagreement"`
	LabelShift     float64 `json:"label_shift"`
	PSI            float64 `json:"psi"`
	// Breaches name the thresholds these figures trip.
	Breaches []string `json:"breaches,omitempty"`
}

// VersionFigures are one version's figures in a window.
type VersionFigures struct {
	Version    string             `json:"version"`
	Requests   float64            `json:"requests"`
	Errors     float64            `json:"errors"`
	ErrorRate  float64            `json:"error_rate"`
	P99Seconds float64            `json:"p99_seconds"`
	Labels     map[string]float64 `json:"labels,omitempty"` // each label's share of the predictions
}

// RolloutRequest is the body of pause, resume and abort.
type RolloutRequest struct {
	Reason string `json:"reason,omitempty"`
}
