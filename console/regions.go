package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
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

// geoHistory is the geo router's GET /v1/history: each region's last
// hour, a minute at a time.
type geoHistory struct {
	Regions []struct {
		Region  string      `json:"region"`
		Minutes []geoMinute `json:"minutes"`
	} `json:"regions"`
}

// geoMinute is one minute of a region at the router.
type geoMinute struct {
	Start      time.Time `json:"start"`
	Requests   uint64    `json:"requests"`
	Failed     uint64    `json:"failed"`
	P99Seconds float64   `json:"p99_seconds"`
	Breaker    int32     `json:"breaker"`
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
	// The minute is in the state compared, so the charts move on once a
	// minute too.
	c.live(w, r, s, "geo", func(ctx context.Context) (any, error) {
		route, err := c.geoRoute(ctx)
		return struct {
			Route  geoRoute
			Minute int64
		}{route, time.Now().Unix() / 60}, err
	})
}

func (c *Console) geoView(ctx context.Context) map[string]any {
	view := map[string]any{}
	if c.cfg.Geo == "" {
		view["Error"] = "the registry was not given the geo router's address (-geo)"
	} else if route, err := c.geoRoute(ctx); err != nil {
		view["Error"] = err.Error()
	} else {
		view["Route"] = route
		var hist geoHistory
		if err := c.geoGet(ctx, "/v1/history", &hist); err != nil {
			view["HistoryError"] = err.Error()
		}
		view["History"] = hist
	}
	return view
}

func (c *Console) geoRoute(ctx context.Context) (geoRoute, error) {
	var out geoRoute
	err := c.geoGet(ctx, "/v1/route", &out)
	return out, err
}

// geoGet reads one of the geo router's internal JSON surfaces into out.
func (c *Console) geoGet(ctx context.Context, path string, out any) error {
	if c.cfg.Geo == "" {
		return fmt.Errorf("no geo router")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.Geo+path, nil)
	if err != nil {
		return err
	}
	if c.cfg.GeoToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.GeoToken)
	}
	resp, err := c.cfg.GeoClient.Do(req)
	if err != nil {
		return fmt.Errorf("the geo router did not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the geo router answered %d to %s", resp.StatusCode, path)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("cannot read the geo router's answer: %w", err)
	}
	return nil
}
