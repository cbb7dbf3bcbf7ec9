// Package rollout runs staged rollouts: a candidate version answers a
// rising share of a channel's requests, region wave by region wave
// (the canary region first), while the edges' own metrics compare it with
// the stable version; a breach sends it back to 0 % and a passed last
// step promotes it.
//
// A rollout is one compare-and-swap document in the registry's store
// (store.WriteDoc), which also holds the lease of the replica driving it.
// Every decision is a new revision, so two replicas can never take the
// same step twice: the loser's write conflicts. What a decision changes
// (the channel's candidate share, a promotion) is recorded in the same
// revision as pending actions; whoever drives next applies them,
// fenced by the revision number (Channel.RolloutFence) and audited under
// an ID derived from it, so a replica killed half-way through is
// finished by the other without a repeated or skipped step. See
// docs/ROLLOUTS.md.
//
// Bucket layout (owned here):
//
//	rollouts/<model>/<channel>/r<…>   rollout document revisions
//	index/rollouts/<model>/<channel>  marker: the channel has had a rollout
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

// Config configures rollouts; it is built in main.
type Config struct {
	Registry *registry.Registry
	Store    store.Store
	// Edges finds the edges whose metrics judge a step; without it a
	// rollout never passes a step (it has no figures).
	Edges Edges
	// Client reads the edges' /metrics (default: 5 s timeout).
	Client *http.Client
	// ID names this replica in leases.
	ID string
	// Tick is how often the controller looks at rollouts (default 1s);
	// Lease is how long a driving replica's lease lasts (default 10s).
	Tick, Lease time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Manager starts, changes and drives rollouts.
type Manager struct {
	cfg Config
	log *slog.Logger
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Registry == nil || cfg.Store == nil || cfg.ID == "" {
		return nil, errors.New("rollout: a registry, a store and a replica ID are required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "rollout", "replica", cfg.ID)}, nil
}

func docKey(model, channel string) string   { return "rollouts/" + model + "/" + channel }
func indexKey(model, channel string) string { return "index/rollouts/" + model + "/" + channel }

// Defaults of a spec's zero fields.
var (
	DefaultSteps      = []float64{5, 25, 50, 100}
	DefaultInterval   = time.Minute
	DefaultShadow     = 0.1
	DefaultThresholds = wire.Thresholds{
		MinRequests: 100, MaxErrorRate: 0.01, MaxLatencyRatio: 2, LatencyFloor: wire.Duration(250 * time.Microsecond),
		MaxLabelShift: 0.1, MaxPSI: 0.25, MaxDisagreement: 0.2, MinShadow: 30,
	}
)

// withDefaults fills a spec's zero fields and checks it.
func withDefaults(s wire.RolloutSpec) (wire.RolloutSpec, error) {
	if err := wire.ValidateName("version", s.Version); err != nil {
		return s, err
	}
	if len(s.Regions) == 0 || len(s.Regions) > 64 {
		return s, fmt.Errorf("%w: name 1 to 64 regions; the first is the canary region", wire.ErrInvalid)
	}
	for i, r := range s.Regions {
		if err := wire.ValidateName("region", r); err != nil {
			return s, err
		}
		if slices.Contains(s.Regions[:i], r) {
			return s, fmt.Errorf("%w: region %s is named twice", wire.ErrInvalid, r)
		}
	}
	if len(s.Steps) == 0 {
		s.Steps = DefaultSteps
	}
	if len(s.Steps) > 20 {
		return s, fmt.Errorf("%w: at most 20 steps", wire.ErrInvalid)
	}
	for i, p := range s.Steps {
		if p <= 0 || p > 100 || i > 0 && p <= s.Steps[i-1] {
			return s, fmt.Errorf("%w: steps must rise within (0, 100], like 5,25,50,100", wire.ErrInvalid)
		}
	}
	if s.Steps[len(s.Steps)-1] != 100 {
		return s, fmt.Errorf("%w: the last step must be 100", wire.ErrInvalid)
	}
	if s.Interval == 0 {
		s.Interval = wire.Duration(DefaultInterval)
	}
	if time.Duration(s.Interval) < time.Second || time.Duration(s.Interval) > 24*time.Hour {
		return s, fmt.Errorf("%w: interval must be 1s to 24h", wire.ErrInvalid)
	}
	if s.Shadow == 0 {
		s.Shadow = DefaultShadow
	}
	if s.Shadow < 0 || s.Shadow > 1 {
		return s, fmt.Errorf("%w: shadow must be 0 to 1", wire.ErrInvalid)
	}
	if len(s.Reason) > 1024 {
		return s, fmt.Errorf("%w: reason longer than 1024 bytes", wire.ErrInvalid)
	}
	th, d := &s.Thresholds, DefaultThresholds
	if th.MinRequests < 0 || th.MinShadow < 0 || th.MaxErrorRate < 0 || th.MaxLatencyRatio < 0 || th.LatencyFloor < 0 ||
		th.MaxLabelShift < 0 || th.MaxPSI < 0 || th.MaxDisagreement < 0 {
		return s, fmt.Errorf("%w: thresholds cannot be negative", wire.ErrInvalid)
	}
	fill(&th.MinRequests, d.MinRequests)
	fill(&th.MinShadow, d.MinShadow)
	fill(&th.MaxErrorRate, d.MaxErrorRate)
	fill(&th.MaxLatencyRatio, d.MaxLatencyRatio)
	fill(&th.LatencyFloor, d.LatencyFloor)
	fill(&th.MaxLabelShift, d.MaxLabelShift)
	fill(&th.MaxPSI, d.MaxPSI)
	fill(&th.MaxDisagreement, d.MaxDisagreement)
	return s, nil
}

func fill[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Get returns the channel's latest rollout.
func (m *Manager) Get(ctx context.Context, model, channel string) (wire.Rollout, error) {
	if err := validateChannel(model, channel); err != nil {
		return wire.Rollout{}, err
	}
	doc, err := store.ReadDoc(ctx, m.cfg.Store, docKey(model, channel))
	if errors.Is(err, store.ErrNotFound) {
		return wire.Rollout{}, fmt.Errorf("channel %s/%s has had no rollout: %w", model, channel, registry.ErrNotFound)
	}
	if err != nil {
		return wire.Rollout{}, registry.StoreErr(fmt.Sprintf("cannot read rollout %s/%s", model, channel), err)
	}
	var ro wire.Rollout
	if err := json.Unmarshal(doc.Data, &ro); err != nil {
		return wire.Rollout{}, fmt.Errorf("cannot decode rollout %s/%s revision %d: %w", model, channel, doc.Rev, err)
	}
	ro.Revision = doc.Rev
	return ro, nil
}

func validateChannel(model, channel string) error {
	if err := wire.ValidateName("model", model); err != nil {
		return err
	}
	return wire.ValidateName("channel", channel)
}

// List returns the latest rollout of every channel that has had one.
func (m *Manager) List(ctx context.Context) ([]wire.Rollout, error) {
	infos, err := m.cfg.Store.List(ctx, "index/rollouts/", "", 0)
	if err != nil {
		return nil, registry.StoreErr("cannot list rollouts", err)
	}
	out := []wire.Rollout{}
	for _, info := range infos {
		model, channel, ok := strings.Cut(strings.TrimPrefix(info.Key, "index/rollouts/"), "/")
		if !ok {
			continue
		}
		ro, err := m.Get(ctx, model, channel)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ro)
	}
	return out, nil
}

// commit writes the next revision of ro, made by change from the current
// one: change sets Pending actions with Seq 0, which commit numbers with
// the new revision. It fails with registry.ErrConflict when the document
// moved since ro was read.
func (m *Manager) commit(ctx context.Context, ro wire.Rollout, change func(*wire.Rollout)) (wire.Rollout, error) {
	next := ro
	next.Pending = nil
	change(&next)
	next.UpdatedAt = m.cfg.Now().UTC()
	seq := ro.Revision + 1
	for i := range next.Pending {
		if next.Pending[i].Seq == 0 {
			next.Pending[i].Seq = seq
		}
	}
	data, err := json.Marshal(next)
	if err != nil {
		return wire.Rollout{}, fmt.Errorf("cannot encode rollout: %w", err)
	}
	rev, err := store.WriteDoc(ctx, m.cfg.Store, docKey(ro.Model, ro.Channel), data, ro.Revision)
	if errors.Is(err, store.ErrConflict) {
		return wire.Rollout{}, fmt.Errorf("%w: rollout %s/%s moved concurrently", registry.ErrConflict, ro.Model, ro.Channel)
	}
	if err != nil {
		return wire.Rollout{}, registry.StoreErr(fmt.Sprintf("cannot write rollout %s/%s", ro.Model, ro.Channel), err)
	}
	next.Revision = rev
	return next, nil
}

// Start begins a rollout of spec on a channel: the candidate answers the
// first step's share in the canary region at once.
func (m *Manager) Start(ctx context.Context, model, channel string, spec wire.RolloutSpec, actor string) (wire.Rollout, error) {
	if err := validateChannel(model, channel); err != nil {
		return wire.Rollout{}, err
	}
	spec, err := withDefaults(spec)
	if err != nil {
		return wire.Rollout{}, err
	}
	if _, err := m.cfg.Registry.GetVersion(ctx, model, spec.Version); err != nil {
		return wire.Rollout{}, err
	}
	ch, err := m.cfg.Registry.GetChannel(ctx, model, channel)
	if err != nil {
		return wire.Rollout{}, err
	}
	stable := map[string]string{}
	for _, r := range spec.Regions {
		switch v := ch.Resolve(r); v {
		case "":
			return wire.Rollout{}, fmt.Errorf("%w: region %s of %s/%s has no target to roll out from", registry.ErrConflict, r, model, channel)
		case spec.Version:
			return wire.Rollout{}, fmt.Errorf("%w: region %s already serves %s", registry.ErrConflict, r, spec.Version)
		default:
			stable[r] = v
		}
	}
	prev, err := m.Get(ctx, model, channel)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		prev = wire.Rollout{Model: model, Channel: channel}
	case err != nil:
		return wire.Rollout{}, err
	case wire.RolloutActive(prev.Status):
		return wire.Rollout{}, fmt.Errorf("%w: %s/%s already has a %s rollout of %s; abort it first", registry.ErrConflict, model, channel, prev.Status, prev.Spec.Version)
	}
	now := m.cfg.Now().UTC()
	ro, err := m.commit(ctx, prev, func(r *wire.Rollout) {
		*r = wire.Rollout{Model: model, Channel: channel, Spec: spec, Status: wire.RolloutRunning, Percent: spec.Steps[0],
			StepStarted: now, Stable: stable, History: []wire.RolloutStep{}, Actor: actor, CreatedAt: now,
			Revision: prev.Revision}
		r.Pending = []wire.RolloutAction{{Kind: "start", Time: now, Actor: actor, Regions: r.WaveRegions(0), Percent: spec.Steps[0],
			Detail: fmt.Sprintf("steps %v every %v, shadow %g", spec.Steps, time.Duration(spec.Interval), spec.Shadow)}}
	})
	if err != nil {
		return wire.Rollout{}, err
	}
	if _, err := m.cfg.Store.Put(ctx, indexKey(model, channel), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
		return wire.Rollout{}, registry.StoreErr("cannot index rollout", err)
	}
	return m.finish(ctx, ro)
}

// Operations an operator applies to a rollout.
const (
	OpPause  = "pause"
	OpResume = "resume"
	OpAbort  = "abort"
)

// Op pauses, resumes or aborts a channel's rollout. Pausing keeps the
// candidate's share; resuming starts the step's window again; aborting
// sends the candidate back to 0 % everywhere it went.
func (m *Manager) Op(ctx context.Context, model, channel, op, actor, reason string) (wire.Rollout, error) {
	if len(reason) > 1024 {
		return wire.Rollout{}, fmt.Errorf("%w: reason longer than 1024 bytes", wire.ErrInvalid)
	}
	for attempt := 0; attempt < 10; attempt++ {
		ro, err := m.Get(ctx, model, channel)
		if err != nil {
			return wire.Rollout{}, err
		}
		if ro.Pending != nil {
			if ro, err = m.finish(ctx, ro); err != nil {
				return wire.Rollout{}, err
			}
		}
		change, err := opChange(ro, op, actor, reason, m.cfg.Now().UTC())
		if err != nil {
			return wire.Rollout{}, err
		}
		ro, err = m.commit(ctx, ro, change)
		if errors.Is(err, registry.ErrConflict) {
			continue // the controller moved it: decide again on the new state
		}
		if err != nil {
			return wire.Rollout{}, err
		}
		return m.finish(ctx, ro)
	}
	return wire.Rollout{}, fmt.Errorf("%w: rollout %s/%s keeps moving; try again", registry.ErrConflict, model, channel)
}

func opChange(ro wire.Rollout, op, actor, reason string, now time.Time) (func(*wire.Rollout), error) {
	act := wire.RolloutAction{Kind: op, Time: now, Actor: actor, Detail: reason}
	switch {
	case op == OpPause && ro.Status == wire.RolloutRunning:
		return func(r *wire.Rollout) {
			r.Status, r.Reason = wire.RolloutPaused, reason
			r.Pending = []wire.RolloutAction{act}
		}, nil
	case op == OpResume && ro.Status == wire.RolloutPaused:
		return func(r *wire.Rollout) {
			r.Status, r.Reason = wire.RolloutRunning, ""
			r.StepStarted, r.Baseline, r.Figures, r.Samples = now, nil, nil, nil
			r.Pending = []wire.RolloutAction{act}
		}, nil
	case op == OpAbort && wire.RolloutActive(ro.Status):
		return func(r *wire.Rollout) {
			end(r, wire.RolloutAborted, "aborted", "aborted by "+actor+": "+reason, now)
			act.Regions = r.Spec.Regions
			r.Pending = []wire.RolloutAction{act}
		}, nil
	case op != OpPause && op != OpResume && op != OpAbort:
		return nil, fmt.Errorf("%w: unknown operation %q: want pause, resume or abort", wire.ErrInvalid, op)
	default:
		return nil, fmt.Errorf("%w: cannot %s the rollout: it is %s", registry.ErrConflict, op, ro.Status)
	}
}

// end closes the running step with outcome and the rollout with status.
func end(r *wire.Rollout, status, outcome, reason string, now time.Time) {
	r.History = append(r.History, wire.RolloutStep{Wave: r.Wave, Regions: r.WaveRegions(r.Wave), Percent: r.Percent,
		Started: r.StepStarted, Ended: now, Outcome: outcome, Figures: r.Figures, Samples: r.Samples})
	r.Samples = nil
	r.Status, r.Reason = status, reason
	if status != wire.RolloutSucceeded {
		r.Percent = 0
	}
	r.Baseline = nil
}
