package regclient

import (
	"context"
	"net/http"
	"net/url"
	"sort"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// ListModels returns every model name, following the pages.
func (c *Client) ListModels(ctx context.Context) ([]string, error) {
	var all []string
	token := ""
	for {
		var page struct {
			Models []string `json:"models"`
			Next   string   `json:"next_page_token"`
		}
		if _, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models?limit=1000&page_token="+url.QueryEscape(token), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Models...)
		if token = page.Next; token == "" {
			return all, nil
		}
	}
}

// ListVersions returns every version of a model, oldest first by
// creation time (names are free-form: v10 is not after v9 by name).
func (c *Client) ListVersions(ctx context.Context, model string) ([]wire.Version, error) {
	var all []wire.Version
	token := ""
	for {
		var page struct {
			Versions []wire.Version `json:"versions"`
			Next     string         `json:"next_page_token"`
		}
		path := "/v1/models/" + url.PathEscape(model) + "/versions?limit=1000&page_token=" + url.QueryEscape(token)
		if _, err := c.jsonRequest(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Versions...)
		if token = page.Next; token == "" {
			break
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedAt.Before(all[j].CreatedAt) })
	return all, nil
}

// ListChannels returns a model's channels at their current revisions.
func (c *Client) ListChannels(ctx context.Context, model string) ([]wire.Channel, error) {
	var out struct {
		Channels []wire.Channel `json:"channels"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/channels", nil, &out)
	return out.Channels, err
}

// EditVersion changes a version's labels and description (publisher).
func (c *Client) EditVersion(ctx context.Context, model, version string, e wire.VersionEdit) (wire.Version, error) {
	var v wire.Version
	_, err := c.jsonRequest(ctx, http.MethodPatch, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), e, &v)
	return v, err
}

// DeleteVersion deletes a version (admin): its name is never used again.
func (c *Client) DeleteVersion(ctx context.Context, model, version string) (wire.Version, error) {
	var out struct {
		Deleted wire.Version `json:"deleted"`
	}
	_, err := c.jsonRequest(ctx, http.MethodDelete, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), nil, &out)
	return out.Deleted, err
}

// Pointer is one place a channel points at a version.
type Pointer struct {
	Channel string  `json:"channel"`
	Scope   string  `json:"scope"`             // "*" (global) or a region
	Percent float64 `json:"percent,omitempty"` // for a candidate: its share
	Role    string  `json:"role"`              // "target" or "candidate"
}

// PointersTo lists where channels point at version: targets (global or
// a region's) and candidates.
func PointersTo(channels []wire.Channel, version string) []Pointer {
	out := []Pointer{}
	for _, ch := range channels {
		if ch.Global == version {
			out = append(out, Pointer{Channel: ch.Channel, Scope: wire.GlobalScope, Role: "target"})
		}
		for _, r := range sortedKeys(ch.Regions) {
			if ch.Regions[r] == version {
				out = append(out, Pointer{Channel: ch.Channel, Scope: r, Role: "target"})
			}
		}
		regions := make([]string, 0, len(ch.Candidates))
		for r := range ch.Candidates {
			regions = append(regions, r)
		}
		sort.Strings(regions)
		for _, r := range regions {
			if cand := ch.Candidates[r]; cand.Version == version {
				out = append(out, Pointer{Channel: ch.Channel, Scope: r, Percent: cand.Percent, Role: "candidate"})
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
