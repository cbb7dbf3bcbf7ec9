package admin

import (
	"net/http"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/rollout"
)

// mountRollouts adds the staged-rollout routes: starting, pausing,
// resuming and aborting need the admin role; reading needs a reader.
func (ad *admin) mountRollouts(a *registry.API) {
	const path = "/v1/admin/models/{name}/channels/{channel}/rollout"
	a.Handle("POST "+path, registry.RoleAdmin, ad.startRollout)
	a.Handle("GET "+path, registry.RoleReader, ad.getRollout)
	for _, op := range []string{rollout.OpPause, rollout.OpResume, rollout.OpAbort} {
		a.Handle("POST "+path+"/"+op, registry.RoleAdmin, ad.rolloutOp(op))
	}
	a.Handle("GET /v1/admin/rollouts", registry.RoleReader, ad.listRollouts)
}

// rollouts returns the manager, or the error of a registry without one.
func (ad *admin) rollouts() (*rollout.Manager, error) {
	if ad.cfg.Rollouts == nil {
		return nil, httperr.New(http.StatusServiceUnavailable, "staged rollouts are not enabled on this registry")
	}
	return ad.cfg.Rollouts, nil
}

func (ad *admin) startRollout(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.rollouts()
	if err != nil {
		return err
	}
	var spec wire.RolloutSpec
	if err := registry.ReadJSON(r, 64<<10, &spec); err != nil {
		return err
	}
	err = ad.gateRollout(r, spec)
	var ro wire.Rollout
	if err == nil {
		ro, err = m.Start(r.Context(), r.PathValue("name"), r.PathValue("channel"), spec, p.Name)
	}
	if err != nil {
		ad.refused(r, p, "rollout_start", spec.Version, err)
		return err
	}
	registry.WriteJSON(w, http.StatusCreated, ro)
	return nil
}

// gateRollout applies the quality gate of promotes to a rollout of a
// production channel (it ends in one), unless the spec forces it.
func (ad *admin) gateRollout(r *http.Request, spec wire.RolloutSpec) error {
	name, channel := r.PathValue("name"), r.PathValue("channel")
	if !ad.isProduction(channel) || spec.Force || spec.Version == "" {
		return nil
	}
	candidate, err := ad.reg.GetVersion(r.Context(), name, spec.Version)
	if err != nil {
		return err
	}
	cur, err := ad.reg.GetChannel(r.Context(), name, channel)
	if err != nil {
		return err
	}
	return ad.qualityGate(r.Context(), cur, candidate, spec.Regions)
}

func (ad *admin) rolloutOp(op string) registry.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
		m, err := ad.rollouts()
		if err != nil {
			return err
		}
		var req wire.RolloutRequest
		if r.ContentLength != 0 {
			if err := registry.ReadJSON(r, 64<<10, &req); err != nil {
				return err
			}
		}
		ro, err := m.Op(r.Context(), r.PathValue("name"), r.PathValue("channel"), op, p.Name, req.Reason)
		if err != nil {
			ad.refused(r, p, "rollout_"+op, "", err)
			return err
		}
		registry.WriteJSON(w, http.StatusOK, ro)
		return nil
	}
}

// refused audits a rollout request the registry turned down.
func (ad *admin) refused(r *http.Request, p registry.Principal, action, version string, err error) {
	entry := wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: action, Result: "refused",
		Model: r.PathValue("name"), Channel: r.PathValue("channel"), Version: version, Detail: err.Error(),
		RequestID: registry.RequestID(r.Context())}
	if registry.StatusOf(err) >= 500 {
		entry.Result = "error"
	}
	_, _ = ad.reg.Audit(r.Context(), entry) // a failure is logged and counted; the refusal stands
}

func (ad *admin) getRollout(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	m, err := ad.rollouts()
	if err != nil {
		return err
	}
	ro, err := m.Get(r.Context(), r.PathValue("name"), r.PathValue("channel"))
	if err != nil {
		return err
	}
	registry.WriteJSON(w, http.StatusOK, ro)
	return nil
}

func (ad *admin) listRollouts(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	m, err := ad.rollouts()
	if err != nil {
		return err
	}
	list, err := m.List(r.Context())
	if err != nil {
		return err
	}
	registry.WriteJSON(w, http.StatusOK, map[string]any{"rollouts": list})
	return nil
}
