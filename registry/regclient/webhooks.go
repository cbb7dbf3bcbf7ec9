package regclient

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// Subscribe creates a webhook subscription (admin); the answer carries
// its secret, which is not shown again.
func (c *Client) Subscribe(ctx context.Context, ns wire.NewSubscription) (wire.Subscription, error) {
	var out wire.Subscription
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/webhooks", ns, &out)
	return out, err
}

// Subscriptions lists webhook subscriptions (admin), without secrets.
func (c *Client) Subscriptions(ctx context.Context) ([]wire.Subscription, error) {
	var out struct {
		Webhooks []wire.Subscription `json:"webhooks"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/admin/webhooks", nil, &out)
	return out.Webhooks, err
}

// Unsubscribe deletes a subscription (admin); its pending deliveries
// are dropped.
func (c *Client) Unsubscribe(ctx context.Context, id string) error {
	_, err := c.jsonRequest(ctx, http.MethodDelete, "/v1/admin/webhooks/"+url.PathEscape(id), nil, nil)
	return err
}

// EnableSubscription sends events to a subscription that was disabled
// (admin); it returns the subscription.
func (c *Client) EnableSubscription(ctx context.Context, id string) (wire.Subscription, error) {
	var out wire.Subscription
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/webhooks/"+url.PathEscape(id)+"/enable", nil, &out)
	return out, err
}

// RotateSubscriptionSecret replaces a subscription's secret (admin); the
// answer carries the new one, which is not shown again. The old one signs
// beside it for grace (nil: the registry's default of 24h).
func (c *Client) RotateSubscriptionSecret(ctx context.Context, id string, grace *time.Duration) (wire.Subscription, error) {
	var req wire.RotateSecret
	if grace != nil {
		d := wire.Duration(*grace)
		req.Grace = &d
	}
	var out wire.Subscription
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/webhooks/"+url.PathEscape(id)+"/rotate-secret", req, &out)
	return out, err
}

// Deliveries lists a subscription's deliveries, newest first (admin).
func (c *Client) Deliveries(ctx context.Context, id string) ([]wire.Delivery, error) {
	var out struct {
		Deliveries []wire.Delivery `json:"deliveries"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/admin/webhooks/"+url.PathEscape(id)+"/deliveries", nil, &out)
	return out.Deliveries, err
}

// Redeliver sends a delivery again, with the same webhook-id (admin).
func (c *Client) Redeliver(ctx context.Context, id, delivery string) (wire.Delivery, error) {
	var out wire.Delivery
	_, err := c.jsonRequest(ctx, http.MethodPost,
		"/v1/admin/webhooks/"+url.PathEscape(id)+"/deliveries/"+url.PathEscape(delivery)+"/redeliver", nil, &out)
	return out, err
}
