package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func init() {
	commands["rollout"] = command{summary: "staged rollouts: start, status [--wait], pause, resume, abort, list", run: runRollout, verbs: []string{"start", "status", "pause", "resume", "abort", "list"}}
}

const rolloutUsage = "usage: sentctl rollout start|status|pause|resume|abort|list --model M [flags]"

// runRollout is `sentctl rollout <verb>`.
func runRollout(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(rolloutUsage)}
	}
	verb := args[0]
	fs := newFlags("rollout "+verb, stderr)
	var (
		rf                  registryFlags
		name, channel, why  string
		wait                bool
		poll                time.Duration
		spec                wire.RolloutSpec
		regions, steps      string
		interval, latFloor  time.Duration
		th                  = &spec.Thresholds
		needModel, needSpec = verb != "list", verb == "start"
	)
	rf.register(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&channel, "channel", "production", "channel")
	out := outputFlag(fs)
	fs.DurationVar(&poll, "poll", time.Second, "with --wait: how often to look")
	switch verb {
	case "start":
		fs.StringVar(&spec.Version, "version", "", "candidate version (required)")
		fs.StringVar(&regions, "regions", "", "regions, the canary region first (required), e.g. eu-west,us-east,ap-south")
		fs.StringVar(&steps, "steps", "5,25,50,100", "the candidate's shares in percent, rising to 100")
		fs.DurationVar(&interval, "interval", time.Minute, "how long each step runs before it is judged")
		fs.Float64Var(&spec.Shadow, "shadow", 0.1, "share of the stable version's requests the candidate scores in the shadow")
		fs.IntVar(&th.MinRequests, "min-requests", 100, "candidate requests a step needs before it is judged and may pass")
		fs.Float64Var(&th.MaxErrorRate, "max-error-rate", 0.01, "how far the candidate's 5xx rate may exceed the stable one's")
		fs.Float64Var(&th.MaxLatencyRatio, "max-latency-ratio", 2, "how many times the stable p99 the candidate's p99 may be")
		fs.DurationVar(&latFloor, "latency-floor", 250*time.Microsecond, "p99 differences below this never trip")
		fs.Float64Var(&th.MaxLabelShift, "max-label-shift", 0.1, "how far a label's share may move")
		fs.Float64Var(&th.MaxPSI, "max-psi", 0.25, "largest population stability index of the score histogram")
		fs.Float64Var(&th.MaxDisagreement, "max-disagreement", 0.2, "largest share of shadow predictions that may disagree")
		fs.IntVar(&th.MinShadow, "min-shadow", 30, "shadow comparisons needed before disagreement is judged")
		fs.StringVar(&spec.Reason, "reason", "", "why, for the audit trail")
		fs.BoolVar(&spec.Force, "force", false, "skip the production channel's quality gate (admins)")
		fs.BoolVar(&wait, "wait", false, "follow the rollout until it ends; exit 1 unless it succeeds")
	case "status":
		fs.BoolVar(&wait, "wait", false, "follow the rollout until it ends; exit 1 unless it succeeds")
	case "pause", "resume", "abort":
		fs.StringVar(&why, "reason", "", "why, for the audit trail")
	case "list":
	default:
		return usageError{fmt.Errorf("unknown verb %q; %s", verb, rolloutUsage)}
	}
	if err := parse(fs, args[1:], false); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	asJSON := *out == "json"
	if needModel {
		if err := required(fs, "model"); err != nil {
			return err
		}
	}
	if needSpec {
		if err := required(fs, "version", "regions"); err != nil {
			return err
		}
		var err error
		if spec.Steps, err = parseSteps(steps); err != nil {
			return usageError{err}
		}
		if spec.Regions = config.List(regions); len(spec.Regions) == 0 {
			return usageError{fmt.Errorf("--regions %q names no region", regions)}
		}
		spec.Interval, th.LatencyFloor = wire.Duration(interval), wire.Duration(latFloor)
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var ro wire.Rollout
	switch verb {
	case "list":
		list, err := client.ListRollouts(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, list)
		}
		for _, ro := range list {
			fmt.Fprintln(stdout, headline(ro))
		}
		return nil
	case "start":
		ro, err = client.StartRollout(ctx, name, channel, spec)
	case "status":
		ro, err = client.GetRollout(ctx, name, channel)
	default:
		ro, err = client.RolloutOp(ctx, name, channel, verb, why)
	}
	if err != nil {
		return err
	}
	if wait {
		// A rollout takes as long as its steps: --wait has no deadline
		// unless --timeout is given.
		if flagGiven(fs, "timeout") {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, rf.timeout)
			defer cancel()
		}
		return follow(ctx, client, ro, poll, stdout, asJSON)
	}
	if asJSON {
		return printJSON(stdout, ro)
	}
	printRollout(stdout, ro)
	return nil
}

func parseSteps(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("--steps %q: want percentages like 5,25,50,100", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// follow prints each change of the rollout until it ends and its last
// actions are applied; it fails unless the rollout succeeded.
func follow(ctx context.Context, client *regclient.Client, ro wire.Rollout, poll time.Duration, stdout io.Writer, asJSON bool) error {
	last := ""
	for {
		if line := headline(ro); line != last && !asJSON {
			fmt.Fprintf(stdout, "%s  %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
		if !wire.RolloutActive(ro.Status) && len(ro.Pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			printRollout(stdout, ro)
			return exitError{code: exitNotConverged, err: fmt.Errorf("the rollout of %s is still %s; stopped waiting: %w", ro.Spec.Version, ro.Status, ctx.Err())}
		case <-time.After(poll):
		}
		next, err := client.GetRollout(ctx, ro.Model, ro.Channel)
		if err != nil {
			fmt.Fprintf(stdout, "%s  cannot read the rollout (will retry): %v\n", time.Now().Format("15:04:05"), err)
			continue
		}
		ro = next
	}
	if asJSON {
		if err := printJSON(stdout, ro); err != nil {
			return err
		}
	} else {
		printRollout(stdout, ro)
	}
	if ro.Status != wire.RolloutSucceeded {
		return fmt.Errorf("the rollout of %s %s: %s", ro.Spec.Version, ro.Status, ro.Reason)
	}
	return nil
}

// headline is the rollout in one line.
func headline(ro wire.Rollout) string {
	s := fmt.Sprintf("%s/%s %s: %s", ro.Model, ro.Channel, ro.Spec.Version, ro.Status)
	if wire.RolloutActive(ro.Status) {
		s += fmt.Sprintf(", wave %d/%d (%s) step %d/%d at %g%%", ro.Wave+1, ro.Waves(), strings.Join(ro.WaveRegions(ro.Wave), ","),
			ro.Step+1, len(ro.Spec.Steps), ro.Percent)
	}
	if ro.Reason != "" {
		s += " — " + ro.Reason
	}
	return s
}

func printRollout(w io.Writer, ro wire.Rollout) {
	fmt.Fprintln(w, headline(ro))
	fmt.Fprintf(w, "  started by %s at %s: regions %s, steps %v, every %v, shadow %g\n", ro.Actor, ro.CreatedAt.Format(time.RFC3339),
		strings.Join(ro.Spec.Regions, ","), ro.Spec.Steps, time.Duration(ro.Spec.Interval), ro.Spec.Shadow)
	if ro.Holder != "" && wire.RolloutActive(ro.Status) {
		fmt.Fprintf(w, "  driven by %s (lease until %s)\n", ro.Holder, ro.LeaseUntil.Format(time.RFC3339))
	}
	if ro.Figures != nil && wire.RolloutActive(ro.Status) {
		fmt.Fprintf(w, "  this step so far: %s\n", figuresLine(*ro.Figures))
	}
	for _, s := range ro.History {
		line := fmt.Sprintf("  %-12s %5g%%  %-9s %6.0fs", strings.Join(s.Regions, ","), s.Percent, s.Outcome, s.Ended.Sub(s.Started).Seconds())
		if s.Figures != nil {
			line += "  " + figuresLine(*s.Figures)
		}
		fmt.Fprintln(w, line)
	}
}

func figuresLine(f wire.Figures) string {
	s := fmt.Sprintf("candidate %.0f req (err %.4f, p99 %s), stable %.0f req (err %.4f, p99 %s), label shift %.3f, PSI %.3f, disagreement %.3f of %.0f, %d edges",
		f.Candidate.Requests, f.Candidate.ErrorRate, seconds(f.Candidate.P99Seconds), f.Stable.Requests, f.Stable.ErrorRate,
		seconds(f.Stable.P99Seconds), f.LabelShift, f.PSI, f.Disagreement, f.ShadowCompared, f.Edges)
	if len(f.EdgeErrors) > 0 {
		s += "; unreadable: " + strings.Join(f.EdgeErrors, "; ")
	}
	return s
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
