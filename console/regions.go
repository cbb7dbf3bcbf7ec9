package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// geoRoute is the geo router's GET /v1/route: regions in the order it
// would try them for the asker, with their breaker and healthy edges.
type geoRoute struct {
	PlacedBy string `json:"placed_by"`
	Regions  []struct {
		Region  string   `json:"region"`
		Breaker string   `json:"breaker"`
		Edges   []string `json:"edges"`
	} `json:"regions"`
}

// regionsPage shows the regions as the geo router sees them.
func (c *Console) regionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, http.StatusOK, "regions-page.html", c.page(s, "Regions", c.geoView(r.Context())))
}

// geoLive is the regions page's live part.
func (c *Console) geoLive(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, http.StatusOK, "geo.html", c.geoView(r.Context()))
}

// geoEvents tells the regions page when a breaker or an edge's health
// changes.
func (c *Console) geoEvents(w http.ResponseWriter, r *http.Request, s *session) {
	// The router's route is read with the console's own token: every
	// session's streams share one poller.
	c.live(w, r, s, "geo", func(ctx context.Context) (any, error) { return c.geoRoute(ctx) })
}

func (c *Console) geoView(ctx context.Context) map[string]any {
	view := map[string]any{}
	if c.cfg.Geo == "" {
		view["Error"] = "the registry was not given the geo router's address (-geo)"
	} else if route, err := c.geoRoute(ctx); err != nil {
		view["Error"] = err.Error()
	} else {
		view["Route"] = route
	}
	return view
}

func (c *Console) geoRoute(ctx context.Context) (geoRoute, error) {
	if c.cfg.Geo == "" {
		return geoRoute{}, fmt.Errorf("no geo router")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.Geo+"/v1/route", nil)
	if err != nil {
		return geoRoute{}, err
	}
	if c.cfg.GeoToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.GeoToken)
	}
	resp, err := c.cfg.GeoClient.Do(req)
	if err != nil {
		return geoRoute{}, fmt.Errorf("the geo router did not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return geoRoute{}, fmt.Errorf("the geo router answered %d", resp.StatusCode)
	}
	var out geoRoute
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return geoRoute{}, fmt.Errorf("cannot read the geo router's answer: %w", err)
	}
	return out, nil
}
