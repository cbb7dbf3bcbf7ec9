package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// rollouts lists every channel's latest rollout.
func (c *Console) rollouts(w http.ResponseWriter, r *http.Request, s *session) {
	var out struct{ Rollouts []wire.Rollout }
	view := map[string]any{}
	if err := c.call(r.Context(), s.Token, http.MethodGet, "/v1/admin/rollouts", nil, &out); err != nil {
		view["Error"] = err.Error()
	}
	view["Rollouts"] = out.Rollouts
	c.render(w, http.StatusOK, "rollouts.html", c.page(s, "Rollouts", view))
}

func rolloutPath(model string) string {
	return "/v1/admin/models/" + url.PathEscape(model) + "/channels/production/rollout"
}

// rollout shows one rollout: its plan, the running step's figures and
// every step taken.
func (c *Console) rollout(w http.ResponseWriter, r *http.Request, s *session) {
	var ro wire.Rollout
	if err := c.call(r.Context(), s.Token, http.MethodGet, rolloutPath(r.PathValue("name")), nil, &ro); err != nil {
		c.failAPI(w, err)
		return
	}
	c.render(w, http.StatusOK, "rollout.html", c.page(s, "Rollout of "+ro.Model+" "+ro.Spec.Version, ro))
}

// rolloutLive is the rollout page's live part: its status, the running
// step's figures and the timeline.
func (c *Console) rolloutLive(w http.ResponseWriter, r *http.Request, s *session) {
	var ro wire.Rollout
	if err := c.call(r.Context(), s.Token, http.MethodGet, rolloutPath(r.PathValue("name")), nil, &ro); err != nil {
		c.failAPI(w, err)
		return
	}
	c.render(w, http.StatusOK, "rollout-live.html", ro)
}

// rolloutEvents tells the rollout page when the rollout moves: a step,
// new figures, a pause or an end.
func (c *Console) rolloutEvents(w http.ResponseWriter, r *http.Request, s *session) {
	c.liveAPI(w, r, s, rolloutPath(r.PathValue("name")))
}

// confirmOp asks for confirmation of a pause, resume or abort.
func (c *Console) confirmOp(w http.ResponseWriter, r *http.Request, s *session) {
	op := r.PathValue("op")
	if op != "pause" && op != "resume" && op != "abort" {
		c.fail(w, http.StatusNotFound, "no such operation")
		return
	}
	c.render(w, http.StatusOK, "op-confirm.html", c.page(s, "Confirm: "+op+" the rollout",
		map[string]string{"Model": r.PathValue("name"), "Op": op, "Reason": strings.TrimSpace(r.PostFormValue("reason"))}))
}

// rolloutOp pauses, resumes or aborts the model's rollout.
func (c *Console) rolloutOp(w http.ResponseWriter, r *http.Request, s *session) {
	op := r.PathValue("op")
	if op != "pause" && op != "resume" && op != "abort" {
		c.fail(w, http.StatusNotFound, "no such operation")
		return
	}
	model := r.PathValue("name")
	if err := c.call(r.Context(), s.Token, http.MethodPost, rolloutPath(model)+"/"+op,
		wire.RolloutRequest{Reason: strings.TrimSpace(r.PostFormValue("reason"))}, nil); err != nil {
		c.failAPI(w, err)
		return
	}
	http.Redirect(w, r, "/ui/models/"+url.PathEscape(model)+"/rollout", http.StatusSeeOther)
}

// rolloutSpec reads the start form.
func rolloutSpec(r *http.Request) (wire.RolloutSpec, string) {
	spec := wire.RolloutSpec{Version: strings.TrimSpace(r.PostFormValue("version")), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	for _, region := range strings.Split(r.PostFormValue("regions"), ",") {
		if region = strings.TrimSpace(region); region != "" {
			spec.Regions = append(spec.Regions, region)
		}
	}
	for _, f := range strings.Split(r.PostFormValue("steps"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return spec, "steps: " + err.Error()
		}
		spec.Steps = append(spec.Steps, p)
	}
	if iv := strings.TrimSpace(r.PostFormValue("interval")); iv != "" {
		d, err := time.ParseDuration(iv)
		if err != nil {
			return spec, "interval: " + err.Error()
		}
		spec.Interval = wire.Duration(d)
	}
	return spec, ""
}

// confirmRollout shows the rollout a start form asks for, with the
// quality gate's dry-run verdict for its regions, and asks for
// confirmation.
func (c *Console) confirmRollout(w http.ResponseWriter, r *http.Request, s *session) {
	model := r.PathValue("name")
	spec, problem := rolloutSpec(r)
	view := map[string]any{"Model": model, "Spec": spec, "Problem": problem,
		"Regions": strings.Join(spec.Regions, ","), "Steps": r.PostFormValue("steps"), "Interval": r.PostFormValue("interval")}
	if problem == "" {
		var dry wire.DryRun
		req := wire.MoveRequest{Version: spec.Version, Regions: spec.Regions, DryRun: true}
		if err := c.call(r.Context(), s.Token, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/production/promote", req, &dry); err != nil {
			view["DryRunError"] = err.Error()
		} else {
			view["Gate"] = dry.Gate
		}
	}
	c.render(w, http.StatusOK, "rollout-confirm.html", c.page(s, "Confirm: roll out "+spec.Version, view))
}

// startRollout starts a confirmed rollout.
func (c *Console) startRollout(w http.ResponseWriter, r *http.Request, s *session) {
	model := r.PathValue("name")
	spec, problem := rolloutSpec(r)
	if problem != "" {
		c.fail(w, http.StatusBadRequest, problem)
		return
	}
	if err := c.call(r.Context(), s.Token, http.MethodPost, rolloutPath(model), spec, nil); err != nil {
		c.failAPI(w, err)
		return
	}
	http.Redirect(w, r, "/ui/models/"+url.PathEscape(model)+"/rollout", http.StatusSeeOther)
}
