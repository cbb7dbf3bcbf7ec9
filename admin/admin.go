// Package admin is the operators' API on top of the registry: promote a
// version to a channel (everywhere or for some regions) behind a quality
// gate, roll back, show a channel's history and the rollout status that
// edges report through Consul, and query the audit trail. Its routes are
// mounted on the registry's API, so they share authentication, request IDs,
// logs and metrics.
package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/rollout"
	"github.com/sentimentpro/sentiment/webhook"
)

// Config configures the admin API; it is built in main.
type Config struct {
	// ProductionChannels only admins may move; they pass the quality gate.
	ProductionChannels []string
	// QualityMargin is how much lower a candidate's recorded accuracy may
	// be than the version it replaces (default 0.01).
	QualityMargin float64
	// Consul and Datacenters feed rollout status; EdgeService is the
	// edges' service name in Consul.
	Consul      *api.Client
	Datacenters []string
	EdgeService string
	// Edges and EdgeClient answer status without Consul: the edges'
	// /health/ready, read with that client.
	Edges      rollout.StaticEdges
	EdgeClient *http.Client
	// Rollouts runs staged rollouts (nil: their routes answer 503).
	Rollouts *rollout.Manager
	// Webhooks keeps subscriptions and delivery logs (nil: 503).
	Webhooks *webhook.Manager
}

type admin struct {
	reg *registry.Registry
	cfg Config
}

var (
	promotesOK      = metrics.NewCounter(`registry_promotes_total{result="ok"}`)
	promotesRefused = metrics.NewCounter(`registry_promotes_total{result="refused"}`)
	rollbacksOK     = metrics.NewCounter(`registry_rollbacks_total{result="ok"}`)
	rollbacksFailed = metrics.NewCounter(`registry_rollbacks_total{result="refused"}`)
)

// Mount adds the admin routes to the registry API.
func Mount(a *registry.API, cfg Config) {
	if len(cfg.ProductionChannels) == 0 {
		cfg.ProductionChannels = []string{"production"}
	}
	if cfg.QualityMargin == 0 {
		cfg.QualityMargin = 0.01
	}
	if cfg.EdgeService == "" {
		cfg.EdgeService = "sentiment-edge"
	}
	ad := &admin{reg: a.Registry(), cfg: cfg}
	a.Handle("POST /v1/admin/models/{name}/channels/{channel}/promote", registry.RolePublisher, ad.promote)
	a.Handle("POST /v1/admin/models/{name}/channels/{channel}/rollback", registry.RolePublisher, ad.rollback)
	a.Handle("GET /v1/admin/models/{name}/channels/{channel}/history", registry.RoleReader, ad.history)
	a.Handle("GET /v1/admin/models/{name}/status", registry.RoleReader, ad.status)
	a.Handle("GET /v1/admin/audit", registry.RoleAdmin, ad.audit)
	a.Handle("PUT /v1/admin/models/{name}/channels/{channel}/candidates/{region}", registry.RoleAdmin, ad.setCandidate)
	a.Handle("DELETE /v1/admin/models/{name}/channels/{channel}/candidates/{region}", registry.RoleAdmin, ad.clearCandidate)
	ad.mountRollouts(a)
	ad.mountWebhooks(a)
}

func (ad *admin) isProduction(channel string) bool {
	return slices.Contains(ad.cfg.ProductionChannels, channel)
}

// validateMove checks a promote or rollback body.
func validateMove(m wire.MoveRequest, needVersion bool) error {
	if needVersion && m.Version == "" {
		return fmt.Errorf("%w: version is required", wire.ErrInvalid)
	}
	if m.Version != "" {
		if err := wire.ValidateName("version", m.Version); err != nil {
			return err
		}
	}
	if len(m.Regions) > 64 {
		return fmt.Errorf("%w: at most 64 regions", wire.ErrInvalid)
	}
	for _, r := range m.Regions {
		if err := wire.ValidateName("region", r); err != nil {
			return err
		}
	}
	if len(m.Reason) > 1024 {
		return fmt.Errorf("%w: reason longer than 1024 bytes", wire.ErrInvalid)
	}
	return nil
}

// readMove authorises a move and reads its body: publishers never move
// production channels (checked before the body is read) and only admins
// force. Refusals are audited.
func (ad *admin) readMove(r *http.Request, p registry.Principal, action string, needVersion bool) (wire.MoveRequest, wire.AuditEntry, error) {
	name, channel := r.PathValue("name"), r.PathValue("channel")
	var req wire.MoveRequest
	deny := func(msg string) (wire.MoveRequest, wire.AuditEntry, error) {
		entry := ad.entry(r, p, action, name, channel, req)
		entry.Result, entry.Detail = "denied", msg
		_, _ = ad.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
		return req, entry, httperr.New(http.StatusForbidden, "%s", msg)
	}
	if ad.isProduction(channel) && p.Role < registry.RoleAdmin {
		return deny(fmt.Sprintf("only admins may move the %q channel", channel))
	}
	if err := registry.ReadJSON(r, 64<<10, &req); err != nil {
		return req, wire.AuditEntry{}, err
	}
	if err := validateMove(req, needVersion); err != nil {
		return req, wire.AuditEntry{}, err
	}
	if req.Force && p.Role < registry.RoleAdmin {
		return deny("only admins may force a move")
	}
	return req, ad.entry(r, p, action, name, channel, req), nil
}

func (ad *admin) promote(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	name, channel := r.PathValue("name"), r.PathValue("channel")
	req, entry, err := ad.readMove(r, p, "promote", true)
	if err != nil {
		return err
	}
	candidate, err := ad.reg.GetVersion(r.Context(), name, req.Version)
	if err != nil {
		return ad.finishMove(w, r, entry, wire.Channel{}, err, promotesOK, promotesRefused)
	}
	if req.DryRun {
		return ad.dryRun(w, r, candidate, req)
	}
	c, err := ad.reg.UpdateChannel(r.Context(), name, channel, req.ExpectRevision, func(cur wire.Channel) (wire.Channel, error) {
		if ad.isProduction(channel) && !req.Force {
			if err := ad.qualityGate(r.Context(), cur, candidate, req.Regions); err != nil {
				return wire.Channel{}, err
			}
		}
		next := promoted(cur, req)
		next.Change = ad.change("promote", p, r, req)
		return next, nil
	})
	return ad.finishMove(w, r, entry, c, err, promotesOK, promotesRefused)
}

// promoted is cur with req's version as the target of req's regions
// (everywhere without regions), their candidates ended.
func promoted(cur wire.Channel, req wire.MoveRequest) wire.Channel {
	next := cur
	if len(req.Regions) == 0 {
		next.Global, next.Regions = req.Version, nil
	} else {
		next.Regions = cloneMap(cur.Regions)
		for _, region := range req.Regions {
			next.Regions[region] = req.Version
		}
	}
	next.Candidates = withoutCandidates(cur.Candidates, req.Regions)
	return next
}

func accuracyOf(v wire.Version) wire.VersionAccuracy {
	va := wire.VersionAccuracy{Version: v.Version}
	if a, ok := v.Accuracy(); ok {
		va.Accuracy = &a
	}
	return va
}

// dryRun answers a promote with "dry_run": the gate's verdict and the
// move, with nothing written or audited.
func (ad *admin) dryRun(w http.ResponseWriter, r *http.Request, candidate wire.Version, req wire.MoveRequest) error {
	name, channel := r.PathValue("name"), r.PathValue("channel")
	cur, err := ad.reg.GetChannel(r.Context(), name, channel)
	if errors.Is(err, registry.ErrNotFound) {
		cur, err = wire.Channel{Model: name, Channel: channel}, nil
	}
	if err != nil {
		return err
	}
	out := wire.DryRun{DryRun: true, Candidate: accuracyOf(candidate), Replaced: []wire.VersionAccuracy{}, Revision: cur.Revision,
		Before: cur.Targets(), After: promoted(cur, req).Targets()}
	for _, v := range slices.Sorted(maps.Values(cur.Targets())) {
		if v == candidate.Version || slices.ContainsFunc(out.Replaced, func(va wire.VersionAccuracy) bool { return va.Version == v }) {
			continue
		}
		if old, err := ad.reg.GetVersion(r.Context(), name, v); err == nil {
			out.Replaced = append(out.Replaced, accuracyOf(old))
		}
	}
	switch {
	case !ad.isProduction(channel):
		out.Gate = "not applied (not a production channel)"
	case req.Force:
		out.Gate = "skipped (forced)"
	default:
		out.Gate = "passed"
		if err := ad.qualityGate(r.Context(), cur, candidate, req.Regions); err != nil {
			out.Gate = "refused: " + err.Error()
		}
	}
	registry.WriteJSON(w, http.StatusOK, out)
	return nil
}

// qualityGate refuses a candidate whose recorded accuracy is lower than
// that of each version it would replace by more than the margin.
func (ad *admin) qualityGate(ctx context.Context, cur wire.Channel, candidate wire.Version, regions []string) error {
	replaced := map[string]bool{}
	if len(regions) == 0 {
		for _, v := range cur.Targets() {
			replaced[v] = true
		}
	} else {
		for _, region := range regions {
			if v := cur.Resolve(region); v != "" {
				replaced[v] = true
			}
		}
	}
	candAcc, candOK := candidate.Accuracy()
	for v := range replaced {
		if v == candidate.Version {
			continue
		}
		old, err := ad.reg.GetVersion(ctx, cur.Model, v)
		if err != nil {
			return err
		}
		oldAcc, oldOK := old.Accuracy()
		switch {
		case !oldOK:
			continue
		case !candOK:
			return fmt.Errorf("%w: %s records no accuracy, %s records %.4f (use force to override)", registry.ErrQualityGate, candidate.Version, v, oldAcc)
		case candAcc < oldAcc-ad.cfg.QualityMargin:
			return fmt.Errorf("%w: %s accuracy %.4f is below %s's %.4f by more than the %.4f margin (use force to override)",
				registry.ErrQualityGate, candidate.Version, candAcc, v, oldAcc, ad.cfg.QualityMargin)
		}
	}
	return nil
}

func (ad *admin) rollback(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	name, channel := r.PathValue("name"), r.PathValue("channel")
	req, entry, err := ad.readMove(r, p, "rollback", false)
	if err != nil {
		return err
	}
	c, err := ad.reg.UpdateChannel(r.Context(), name, channel, req.ExpectRevision, func(cur wire.Channel) (wire.Channel, error) {
		if cur.Revision == 0 {
			return wire.Channel{}, fmt.Errorf("channel %s/%s: %w", name, channel, registry.ErrNotFound)
		}
		next, err := ad.rollbackTarget(r.Context(), cur, req)
		if err != nil {
			return wire.Channel{}, err
		}
		next.Candidates = withoutCandidates(next.Candidates, req.Regions)
		next.Change = ad.change("rollback", p, r, req)
		return next, nil
	})
	return ad.finishMove(w, r, entry, c, err, rollbacksOK, rollbacksFailed)
}

// rollbackTarget computes the state a rollback moves to. With a version,
// that version becomes the target of the scope. Without one, a global
// rollback restores the newest earlier revision whose global target
// differs from the current one (overrides included), and a regional one
// sets each region to the newest earlier target it resolved to that
// differs from its current one.
func (ad *admin) rollbackTarget(ctx context.Context, cur wire.Channel, req wire.MoveRequest) (wire.Channel, error) {
	next := cur
	next.Regions, next.Digests = cloneMap(cur.Regions), cloneMap(cur.Digests)
	if req.Version != "" {
		if len(req.Regions) == 0 {
			next.Global, next.Regions = req.Version, nil
		}
		for _, region := range req.Regions {
			next.Regions[region] = req.Version
		}
		return next, nil
	}
	hist, err := ad.reg.ChannelHistory(ctx, cur.Model, cur.Channel, 0)
	if err != nil {
		return wire.Channel{}, err
	}
	if len(req.Regions) == 0 {
		for _, old := range hist {
			if old.Revision < cur.Revision && old.Global != "" && old.Global != cur.Global {
				// The earlier revision's digests come along: the registry
				// refuses the move if a name now holds other bytes.
				next.Global, next.Regions, next.Digests = old.Global, cloneMap(old.Regions), cloneMap(old.Digests)
				return next, nil
			}
		}
		return wire.Channel{}, fmt.Errorf("%w: channel %s/%s has no earlier global target to roll back to", registry.ErrConflict, cur.Model, cur.Channel)
	}
	for _, region := range req.Regions {
		now := cur.Resolve(region)
		found := false
		for _, old := range hist {
			if v := old.Resolve(region); old.Revision < cur.Revision && v != "" && v != now {
				next.Regions[region] = v
				if d, ok := old.Digests[v]; ok {
					next.Digests[v] = d
				}
				found = true
				break
			}
		}
		if !found {
			return wire.Channel{}, fmt.Errorf("%w: region %s of %s/%s has no earlier target to roll back to", registry.ErrConflict, region, cur.Model, cur.Channel)
		}
	}
	return next, nil
}

func (ad *admin) change(action string, p registry.Principal, r *http.Request, req wire.MoveRequest) wire.Change {
	return wire.Change{Action: action, Actor: p.Name, Regions: req.Regions, Reason: req.Reason, Forced: req.Force,
		RequestID: registry.RequestID(r.Context())}
}

func (ad *admin) entry(r *http.Request, p registry.Principal, action, name, channel string, req wire.MoveRequest) wire.AuditEntry {
	return wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: action, Model: name, Channel: channel,
		Version: req.Version, Regions: req.Regions, Forced: req.Force, Reason: req.Reason, RequestID: registry.RequestID(r.Context())}
}

// finishMove audits the outcome and writes the response.
func (ad *admin) finishMove(w http.ResponseWriter, r *http.Request, entry wire.AuditEntry, c wire.Channel, err error, ok, refused *metrics.Counter) error {
	if err != nil {
		refused.Inc()
		entry.Result, entry.Detail = "refused", err.Error()
		if registry.StatusOf(err) >= 500 {
			entry.Result = "error"
		}
		_, _ = ad.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
		return err
	}
	ok.Inc()
	entry.Result, entry.Revision = "ok", c.Revision
	entry.Before, entry.After = c.Change.Before, c.Change.After
	if entry.Version == "" {
		entry.Version = c.Global
	}
	if _, err := ad.reg.Audit(r.Context(), entry); err != nil {
		// The move happened and is in the channel history; say so.
		return registry.Unaudited(fmt.Sprintf("channel %s/%s moved to revision %d", entry.Model, entry.Channel, c.Revision), err)
	}
	registry.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (ad *admin) history(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: limit %q", wire.ErrInvalid, s)
		}
		limit = n
	}
	hist, err := ad.reg.ChannelHistory(r.Context(), r.PathValue("name"), r.PathValue("channel"), limit)
	if err != nil {
		return err
	}
	registry.WriteJSON(w, http.StatusOK, map[string]any{"history": hist})
	return nil
}

func (ad *admin) audit(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	q := r.URL.Query()
	aq := registry.AuditQuery{Model: q.Get("model"), Channel: q.Get("channel"), Actor: q.Get("actor"), Action: q.Get("action")}
	var err error
	if aq.Since, err = timeParam(q.Get("since")); err != nil {
		return err
	}
	if aq.Until, err = timeParam(q.Get("until")); err != nil {
		return err
	}
	if s := q.Get("limit"); s != "" {
		if aq.Limit, err = strconv.Atoi(s); err != nil {
			return fmt.Errorf("%w: limit %q", wire.ErrInvalid, s)
		}
	}
	entries, err := ad.reg.QueryAudit(r.Context(), aq)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []wire.AuditEntry{}
	}
	registry.WriteJSON(w, http.StatusOK, map[string]any{"entries": entries})
	return nil
}

// timeParam reads RFC 3339 times or durations back from now ("24h").
func timeParam(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q is neither RFC 3339 nor a duration such as 24h", wire.ErrInvalid, s)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// errNoDiscovery is reported by status when Consul is not configured.
var errNoDiscovery = errors.New("status needs Consul or the edges' list (start the registry with -consul or -edges)")
