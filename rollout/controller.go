package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/sentimentpro/sentiment/internal/units"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
)

var (
	stepsPassed = metrics.NewCounter(`registry_rollout_steps_total{outcome="passed"}`)
	rollbacks   = metrics.NewCounter(`registry_rollout_steps_total{outcome="breached"}`)
	takeovers   = metrics.NewCounter(`registry_rollout_lease_takeovers_total`)
	driveErrors = metrics.NewCounter(`registry_rollout_errors_total`)
)

// Run drives every active rollout until ctx ends: each Tick it looks at
// them all and drives those whose lease it holds or can take.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		infos, err := m.cfg.Store.List(ctx, "index/rollouts/", "", 0)
		if err != nil {
			driveErrors.Inc()
			m.log.Warn("cannot list rollouts", "err", err)
			continue
		}
		for _, info := range infos {
			model, channel, ok := strings.Cut(strings.TrimPrefix(info.Key, "index/rollouts/"), "/")
			if !ok {
				continue
			}
			if err := m.drive(ctx, model, channel); err != nil && !errors.Is(err, registry.ErrConflict) && ctx.Err() == nil {
				driveErrors.Inc()
				m.log.Warn("cannot drive rollout", "model", model, "channel", channel, "err", err)
			}
		}
	}
}

// drive takes one rollout one tick further, if this replica holds (or
// can take) its lease.
func (m *Manager) drive(ctx context.Context, model, channel string) error {
	ro, err := m.Get(ctx, model, channel)
	if err != nil || !wire.RolloutActive(ro.Status) && ro.Pending == nil {
		return err
	}
	now := m.cfg.Now().UTC()
	held := ro.Holder == m.cfg.ID && now.Before(ro.LeaseUntil)
	if !held && ro.Holder != "" && ro.Holder != m.cfg.ID && now.Before(ro.LeaseUntil) {
		return nil // another replica drives it
	}
	if !held {
		previous := ro.Holder
		if ro, err = m.commit(ctx, ro, m.renew(ro, now)); err != nil {
			return err
		}
		if previous != "" && previous != m.cfg.ID {
			takeovers.Inc()
			m.log.Info("took over a rollout whose lease ran out", "model", model, "channel", channel, "previous", previous)
		}
	}
	if ro.Pending != nil {
		if ro, err = m.finish(ctx, ro); err != nil || !wire.RolloutActive(ro.Status) {
			return err
		}
	}
	if moved, err := m.superseded(ctx, ro); err != nil || moved != "" {
		if err != nil {
			return err
		}
		ro, err = m.commit(ctx, ro, func(r *wire.Rollout) {
			end(r, wire.RolloutAborted, "superseded", moved, now)
			r.Pending = []wire.RolloutAction{{Kind: "superseded", Time: now, Actor: m.actor(), Regions: r.WaveRegions(r.Wave), Detail: moved}}
		})
		if err == nil {
			_, err = m.finish(ctx, ro)
		}
		return err
	}
	if ro.Status == wire.RolloutPaused {
		return m.renewIfDue(ctx, ro, now, nil)
	}
	if ro.Baseline == nil {
		base, errs := m.scrapeAll(ctx, ro)
		_, err := m.commit(ctx, ro, func(r *wire.Rollout) {
			m.renew(ro, now)(r)
			r.Baseline = base
			r.Figures = &wire.Figures{Edges: len(base), EdgeErrors: errs}
		})
		return err
	}
	return m.judgeStep(ctx, ro, now)
}

// judgeStep reads the step's figures so far and rolls back, moves on,
// or waits.
func (m *Manager) judgeStep(ctx context.Context, ro wire.Rollout, now time.Time) error {
	counters, errs := m.scrapeAll(ctx, ro)
	window := Counters{}
	for id, c := range counters {
		window.add(delta(c, ro.Baseline[id]))
	}
	look := now.Sub(ro.StepStarted).Seconds() / time.Duration(ro.Spec.Interval).Seconds()
	figs, enough := judge(window, stableNames(ro.Stable, ro.WaveRegions(ro.Wave)), ro.Spec.Version, ro.Spec.Thresholds, look)
	figs.WindowSeconds = now.Sub(ro.StepStarted).Seconds()
	figs.Edges, figs.EdgeErrors = len(counters), errs
	var change func(*wire.Rollout)
	switch {
	case len(figs.Breaches) > 0:
		rollbacks.Inc()
		reason := "rolled back automatically: " + strings.Join(figs.Breaches, "; ")
		m.log.Warn("rollout breached its thresholds", "model", ro.Model, "channel", ro.Channel, "version", ro.Spec.Version,
			"percent", ro.Percent, "breaches", figs.Breaches)
		change = func(r *wire.Rollout) {
			record(r, figs, now)
			end(r, wire.RolloutRolledBack, "breached", reason, now)
			r.Pending = []wire.RolloutAction{{Kind: "rollback", Time: now, Actor: m.actor(), Regions: r.Spec.Regions,
				Detail: reason + "; " + summary(figs)}}
		}
	case enough && now.Sub(ro.StepStarted) >= time.Duration(ro.Spec.Interval):
		stepsPassed.Inc()
		change = func(r *wire.Rollout) { advance(r, figs, now, m.actor()) }
	default:
		return m.renewIfDue(ctx, ro, now, &figs)
	}
	ro, err := m.commit(ctx, ro, func(r *wire.Rollout) {
		m.renew(ro, now)(r)
		change(r)
	})
	if err != nil {
		return err
	}
	_, err = m.finish(ctx, ro)
	return err
}

// advance closes a passed step and decides the next one: the next share
// in the same wave, or the wave's promotion (and the next wave's first
// step, or the end).
func advance(r *wire.Rollout, figs wire.Figures, now time.Time, actor string) {
	record(r, figs, now)
	r.History = append(r.History, wire.RolloutStep{Wave: r.Wave, Regions: r.WaveRegions(r.Wave), Percent: r.Percent,
		Started: r.StepStarted, Ended: now, Outcome: "passed", Figures: &figs, Samples: r.Samples})
	passed := fmt.Sprintf("passed %g%%: %s", r.Percent, summary(figs))
	regions := r.WaveRegions(r.Wave)
	if r.Step+1 < len(r.Spec.Steps) {
		r.Step++
		r.Percent = r.Spec.Steps[r.Step]
		r.Pending = []wire.RolloutAction{{Kind: "step", Time: now, Actor: actor, Regions: regions, Percent: r.Percent, Detail: passed}}
	} else {
		r.Pending = []wire.RolloutAction{{Kind: "promote", Time: now, Actor: actor, Regions: regions, Percent: 100, Detail: passed}}
		if r.Wave+1 < r.Waves() {
			r.Wave, r.Step, r.Percent = r.Wave+1, 0, r.Spec.Steps[0]
			r.Pending = append(r.Pending, wire.RolloutAction{Kind: "step", Time: now, Actor: actor,
				Regions: r.WaveRegions(r.Wave), Percent: r.Percent, Detail: "next wave"})
		} else {
			r.Status, r.Reason = wire.RolloutSucceeded, "promoted in every region"
		}
	}
	r.StepStarted, r.Baseline, r.Figures, r.Samples = now, nil, nil, nil
}

// record makes figs the running step's figures and adds them to its
// samples.
func record(r *wire.Rollout, figs wire.Figures, now time.Time) {
	r.Figures = &figs
	r.Samples = wire.AddSample(r.Samples, figs, now.Sub(r.StepStarted).Seconds())
}

// summary is the figures in one line, for audit entries.
func summary(f wire.Figures) string {
	return fmt.Sprintf("candidate %.0f requests (error rate %s, p99 %s), stable %.0f (error rate %s, p99 %s), label shift %s, PSI %.3f, shadow disagreement %s over %.0f, %d edges, %.0fs",
		f.Candidate.Requests, units.Percent(f.Candidate.ErrorRate), units.Seconds(f.Candidate.P99Seconds), f.Stable.Requests,
		units.Percent(f.Stable.ErrorRate), units.Seconds(f.Stable.P99Seconds), units.Percent(f.LabelShift), f.PSI,
		units.Percent(f.Disagreement), f.ShadowCompared, f.Edges, f.WindowSeconds)
}

func (m *Manager) actor() string { return "rollout-controller@" + m.cfg.ID }

// renew is the change that makes this replica the holder until now+Lease,
// keeping the pending actions.
func (m *Manager) renew(ro wire.Rollout, now time.Time) func(*wire.Rollout) {
	return func(r *wire.Rollout) {
		r.Holder, r.LeaseUntil = m.cfg.ID, now.Add(m.cfg.Lease)
		r.Pending = ro.Pending
	}
}

// renewIfDue extends the lease once half of it is gone, recording the
// step's figures so far (figs, when not nil) in the same write.
func (m *Manager) renewIfDue(ctx context.Context, ro wire.Rollout, now time.Time, figs *wire.Figures) error {
	if ro.LeaseUntil.Sub(now) > m.cfg.Lease/2 {
		return nil
	}
	_, err := m.commit(ctx, ro, func(r *wire.Rollout) {
		m.renew(ro, now)(r)
		if figs != nil {
			record(r, *figs, now)
		}
	})
	return err
}

// superseded says how the channel was moved outside the rollout, if it
// was: the wave's regions no longer have the candidate beside them.
func (m *Manager) superseded(ctx context.Context, ro wire.Rollout) (string, error) {
	ch, err := m.cfg.Registry.GetChannel(ctx, ro.Model, ro.Channel)
	if err != nil {
		return "", err
	}
	for _, r := range ro.WaveRegions(ro.Wave) {
		if c, ok := ch.Candidates[r]; !ok || c.Version != ro.Spec.Version {
			return fmt.Sprintf("the channel was moved outside the rollout (revision %d: %s by %s)", ch.Revision, ch.Change.Action, ch.Change.Actor), nil
		}
	}
	return "", nil
}

// scrapeAll reads the rollout's series from every edge of the wave's
// regions, by edge.
func (m *Manager) scrapeAll(ctx context.Context, ro wire.Rollout) (map[string]map[string]float64, []string) {
	out := map[string]map[string]float64{}
	if m.cfg.Edges == nil {
		return out, []string{"no edge source is configured (-consul or -edges)"}
	}
	edges, err := m.cfg.Edges.Edges(ctx, ro.Model, ro.Channel, ro.WaveRegions(ro.Wave))
	if err != nil {
		return out, []string{err.Error()}
	}
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := scrape(ctx, m.cfg.Client, e, ro.Model, ro.Stable[e.Region], ro.Spec.Version)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			out[e.ID] = c
		}()
	}
	wg.Wait()
	return out, errs
}

// finish applies ro's pending actions to the channel, audits each, and
// clears them. Every step is idempotent, so whoever finishes (the
// controller, the other replica, an operator's request) does no harm
// by finishing again.
func (m *Manager) finish(ctx context.Context, ro wire.Rollout) (wire.Rollout, error) {
	for i, act := range ro.Pending {
		if err := m.apply(ctx, ro, act); err != nil {
			return ro, err
		}
		if err := m.audit(ctx, ro, i, act); err != nil {
			return ro, err
		}
	}
	next, err := m.commit(ctx, ro, func(*wire.Rollout) {})
	if errors.Is(err, registry.ErrConflict) {
		return m.Get(ctx, ro.Model, ro.Channel)
	}
	return next, err
}

var (
	errStale     = errors.New("a newer rollout action moved the channel")
	errUnchanged = errors.New("the channel already reflects the action")
)

// apply makes the channel reflect one action, unless a newer action
// (a higher fence) already moved it.
func (m *Manager) apply(ctx context.Context, ro wire.Rollout, act wire.RolloutAction) error {
	var change func(next *wire.Channel) bool
	switch act.Kind {
	case "start", "step":
		change = func(next *wire.Channel) bool { return setCandidates(next, act.Regions, ro.Spec, act.Percent) }
	case "promote":
		change = func(next *wire.Channel) bool { return promote(next, act.Regions, ro.Spec.Version) }
	case "rollback", "abort":
		change = func(next *wire.Channel) bool { return restore(next, ro) }
	default:
		return nil // pause, resume, superseded: the audit entry is all
	}
	_, err := m.cfg.Registry.UpdateChannel(ctx, ro.Model, ro.Channel, nil, func(cur wire.Channel) (wire.Channel, error) {
		if cur.RolloutFence > act.Seq {
			return wire.Channel{}, errStale
		}
		next := cur
		next.Regions, next.Candidates = maps.Clone(cur.Regions), maps.Clone(cur.Candidates)
		if !change(&next) {
			return wire.Channel{}, errUnchanged
		}
		next.RolloutFence = act.Seq
		next.Change = wire.Change{Action: "rollout_" + act.Kind, Actor: act.Actor, Regions: act.Regions, Reason: act.Detail}
		return next, nil
	})
	if errors.Is(err, errStale) || errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

func setCandidates(ch *wire.Channel, regions []string, spec wire.RolloutSpec, percent float64) bool {
	want := wire.Candidate{Version: spec.Version, Percent: percent, Shadow: spec.Shadow}
	changed := false
	for _, r := range regions {
		if ch.Candidates[r] != want {
			if ch.Candidates == nil {
				ch.Candidates = map[string]wire.Candidate{}
			}
			ch.Candidates[r], changed = want, true
		}
	}
	return changed
}

func promote(ch *wire.Channel, regions []string, version string) bool {
	changed := false
	for _, r := range regions {
		if ch.Regions[r] != version {
			if ch.Regions == nil {
				ch.Regions = map[string]string{}
			}
			ch.Regions[r], changed = version, true
		}
		if _, ok := ch.Candidates[r]; ok {
			delete(ch.Candidates, r)
			changed = true
		}
	}
	return changed
}

// restore takes the candidate out of every region of the rollout and
// gives each region it was promoted in its stable version back.
func restore(ch *wire.Channel, ro wire.Rollout) bool {
	changed := false
	for _, r := range ro.Spec.Regions {
		if c, ok := ch.Candidates[r]; ok && c.Version == ro.Spec.Version {
			delete(ch.Candidates, r)
			changed = true
		}
		if ch.Resolve(r) == ro.Spec.Version && ro.Stable[r] != "" {
			if ch.Regions == nil {
				ch.Regions = map[string]string{}
			}
			ch.Regions[r], changed = ro.Stable[r], true
		}
	}
	return changed
}

// audit records one action under an ID made from its revision, so an
// action finished twice is written once.
func (m *Manager) audit(ctx context.Context, ro wire.Rollout, i int, act wire.RolloutAction) error {
	detail := act.Detail
	if act.Kind == "start" || act.Kind == "step" {
		detail = fmt.Sprintf("candidate at %g%% in %s; %s", act.Percent, strings.Join(act.Regions, ","), act.Detail)
	}
	_, err := m.cfg.Registry.Audit(ctx, wire.AuditEntry{
		ID:   fmt.Sprintf("%020d-rollout-%s-%s-%d-%d", act.Time.UnixNano(), ro.Model, ro.Channel, act.Seq, i),
		Time: act.Time, Actor: act.Actor, Action: "rollout_" + act.Kind, Result: "ok",
		Model: ro.Model, Channel: ro.Channel, Version: ro.Spec.Version, Regions: act.Regions, Revision: act.Seq,
		Reason: ro.Spec.Reason, Detail: detail,
	})
	return err
}
