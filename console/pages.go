package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// page is what every page template gets: the principal, the CSRF token
// for its forms, and its own data.
type page struct {
	Title      string
	Name, Role string
	CSRF       string
	CanAct     bool // admins see the action controls
	Data       any
}

func (c *Console) page(s *session, title string, data any) page {
	return page{Title: title, Name: s.Name, Role: s.Role, CSRF: s.CSRF, CanAct: s.Role == "admin", Data: data}
}

func (c *Console) models(w http.ResponseWriter, r *http.Request, s *session) {
	var out struct{ Models []string }
	if err := c.call(r.Context(), s.Token, http.MethodGet, "/v1/models?limit=1000", nil, &out); err != nil {
		c.failAPI(w, err)
		return
	}
	c.render(w, http.StatusOK, "models.html", c.page(s, "Models", out.Models))
}

// modelView is a model's page: its versions, newest first, and its
// channels.
type modelView struct {
	Model    string
	Versions []wire.Version
	Channels []wire.Channel
	Regions  regionsView
	Timeline *timeline // production's moves, drawn; nil without any
}

func (c *Console) model(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	var vs struct{ Versions []wire.Version }
	if err := c.call(r.Context(), s.Token, http.MethodGet, "/v1/models/"+url.PathEscape(name)+"/versions?limit=1000", nil, &vs); err != nil {
		c.failAPI(w, err)
		return
	}
	var cs struct{ Channels []wire.Channel }
	if err := c.call(r.Context(), s.Token, http.MethodGet, "/v1/models/"+url.PathEscape(name)+"/channels", nil, &cs); err != nil {
		c.failAPI(w, err)
		return
	}
	sort.Slice(vs.Versions, func(i, j int) bool { return vs.Versions[i].CreatedAt.After(vs.Versions[j].CreatedAt) })
	c.render(w, http.StatusOK, "model.html", c.page(s, name, modelView{Model: name, Versions: vs.Versions, Channels: cs.Channels,
		Regions: c.regionsOf(r, s, name), Timeline: c.timelineOf(r, s, name)}))
}

// timelineOf draws production's last 50 moves; nil if there are none or
// the history cannot be read (the rest of the page still shows).
func (c *Console) timelineOf(r *http.Request, s *session, model string) *timeline {
	var h struct{ History []wire.Channel }
	path := "/v1/admin/models/" + url.PathEscape(model) + "/channels/production/history?limit=50"
	if err := c.call(r.Context(), s.Token, http.MethodGet, path, nil, &h); err != nil {
		return nil
	}
	sort.Slice(h.History, func(i, j int) bool { return h.History[i].UpdatedAt.Before(h.History[j].UpdatedAt) })
	return newTimeline(h.History, time.Now())
}

// regionsView is the live part of a model's page.
type regionsView struct {
	Model  string
	Status *wire.Status
	Error  string
}

func statusPath(model string) string {
	return "/v1/admin/models/" + url.PathEscape(model) + "/status?channel=production"
}

func (c *Console) regionsOf(r *http.Request, s *session, model string) regionsView {
	v := regionsView{Model: model}
	var st wire.Status
	if err := c.call(r.Context(), s.Token, http.MethodGet, statusPath(model), nil, &st); err != nil {
		v.Error = err.Error()
		return v
	}
	v.Status = &st
	return v
}

// regions is the fragment live.js swaps in.
func (c *Console) regions(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, http.StatusOK, "regions.html", c.regionsOf(r, s, r.PathValue("name")))
}

// regionsEvents tells the page when what its regions show changes: a
// channel move, an edge converging or turning unhealthy.
func (c *Console) regionsEvents(w http.ResponseWriter, r *http.Request, s *session) {
	c.liveAPI(w, r, s, statusPath(r.PathValue("name")))
}

// liveAPI is a live stream of what the API answers at path.
func (c *Console) liveAPI(w http.ResponseWriter, r *http.Request, s *session, path string) {
	// The state is read with the session's token: its streams share a
	// poller, other sessions' do not.
	c.live(w, r, s, s.ID+" "+path, func(ctx context.Context) (any, error) {
		var v json.RawMessage
		err := c.call(ctx, s.Token, http.MethodGet, path, nil, &v)
		return v, err
	})
}
