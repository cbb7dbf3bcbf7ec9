package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// move is a promote or a rollback an operator asked for, before and
// after confirmation.
type move struct {
	Model, Action, Version, Region, Reason string
	DryRun                                 *wire.DryRun // the gate's verdict and the change, for a promote
	DryRunError                            string
}

func (m move) request() wire.MoveRequest {
	req := wire.MoveRequest{Version: m.Version, Reason: m.Reason}
	if m.Region != "" {
		req.Regions = []string{m.Region}
	}
	return req
}

func readMove(r *http.Request) move {
	return move{Model: r.PathValue("name"), Action: r.PathValue("action"), Version: strings.TrimSpace(r.PostFormValue("version")),
		Region: strings.TrimSpace(r.PostFormValue("region")), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
}

// confirm shows what a move would do (for a promote, the quality gate's
// dry-run verdict) and asks for confirmation.
func (c *Console) confirm(w http.ResponseWriter, r *http.Request, s *session) {
	m := readMove(r)
	if m.Action != "promote" && m.Action != "rollback" {
		c.fail(w, http.StatusNotFound, "no such action")
		return
	}
	if m.Action == "promote" {
		req := m.request()
		req.DryRun = true
		var out wire.DryRun
		if err := c.call(r.Context(), s.Token, http.MethodPost, c.movePath(m), req, &out); err != nil {
			m.DryRunError = err.Error()
		} else {
			m.DryRun = &out
		}
	}
	c.render(w, http.StatusOK, "confirm.html", c.page(s, "Confirm: "+m.Action, m))
}

func (c *Console) movePath(m move) string {
	return "/v1/admin/models/" + url.PathEscape(m.Model) + "/channels/production/" + m.Action
}

// act makes a confirmed move through the API, as the session's principal.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session) {
	m := readMove(r)
	if m.Action != "promote" && m.Action != "rollback" {
		c.fail(w, http.StatusNotFound, "no such action")
		return
	}
	if err := c.call(r.Context(), s.Token, http.MethodPost, c.movePath(m), m.request(), nil); err != nil {
		c.failAPI(w, err)
		return
	}
	http.Redirect(w, r, "/ui/models/"+url.PathEscape(m.Model), http.StatusSeeOther)
}

// audit shows the audit trail, newest last, filtered by model and action.
func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {"200"}}
	for _, k := range []string{"model", "action", "actor"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	var out struct{ Entries []wire.AuditEntry }
	view := map[string]any{"Model": q.Get("model"), "Action": q.Get("action"), "Actor": q.Get("actor")}
	if err := c.call(r.Context(), s.Token, http.MethodGet, "/v1/admin/audit?"+q.Encode(), nil, &out); err != nil {
		view["Error"] = err.Error()
	}
	view["Entries"] = out.Entries
	c.render(w, http.StatusOK, "audit.html", c.page(s, "Audit trail", view))
}
