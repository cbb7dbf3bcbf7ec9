package regclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sentimentpro/sentiment/registry/wire"
)

func rolloutPath(model, channel string) string {
	return "/v1/admin/models/" + url.PathEscape(model) + "/channels/" + url.PathEscape(channel) + "/rollout"
}

// StartRollout starts a rollout on a channel (admin).
func (c *Client) StartRollout(ctx context.Context, model, channel string, spec wire.RolloutSpec) (wire.Rollout, error) {
	var out wire.Rollout
	_, err := c.jsonRequest(ctx, http.MethodPost, rolloutPath(model, channel), spec, &out)
	return out, err
}

// GetRollout returns the channel's latest rollout.
func (c *Client) GetRollout(ctx context.Context, model, channel string) (wire.Rollout, error) {
	var out wire.Rollout
	_, err := c.jsonRequest(ctx, http.MethodGet, rolloutPath(model, channel), nil, &out)
	return out, err
}

// ListRollouts returns every channel's latest rollout.
func (c *Client) ListRollouts(ctx context.Context) ([]wire.Rollout, error) {
	var out struct {
		Rollouts []wire.Rollout `json:"rollouts"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/admin/rollouts", nil, &out)
	return out.Rollouts, err
}

// RolloutOp pauses, resumes or aborts the channel's rollout (admin);
// op is "pause", "resume" or "abort".
func (c *Client) RolloutOp(ctx context.Context, model, channel, op, reason string) (wire.Rollout, error) {
	var out wire.Rollout
	_, err := c.jsonRequest(ctx, http.MethodPost, rolloutPath(model, channel)+"/"+op, wire.RolloutRequest{Reason: reason}, &out)
	return out, err
}
