package wire

import (
	"encoding/json"
	"time"
)

// Webhook event types: what a subscription may ask for.
const (
	EventVersionPublished = "version.published"
	EventVersionDeleted   = "version.deleted"
	EventChannelMoved     = "channel.moved"       // promote, rollback, candidate set or cleared
	EventRolloutStep      = "rollout.step"        // a rollout started, moved a step, or promoted a wave
	EventRolloutRollback  = "rollout.rolled_back" // a breach sent the candidate back to 0 %
	EventRolloutAborted   = "rollout.aborted"     // an operator aborted it, or a move superseded it
	EventGateRefused      = "gate.refused"        // the quality gate refused a promote or a rollout
)

// EventTypes lists every event type.
var EventTypes = []string{EventVersionPublished, EventVersionDeleted, EventChannelMoved, EventRolloutStep,
	EventRolloutRollback, EventRolloutAborted, EventGateRefused}

// Subscription is a webhook endpoint and the events it receives.
type Subscription struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`           // event types; empty: all
	Models      []string `json:"models,omitempty"` // empty: every model
	Description string   `json:"description,omitempty"`
	// Secret signs deliveries (Standard Webhooks, "whsec_…"). The
	// registry returns it once, when the subscription is created.
	Secret    string    `json:"secret,omitempty"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
	// DisabledAt is when deliveries stopped because the endpoint
	// answered 410 Gone (Standard Webhooks: the receiver wants no more),
	// and DisabledReason says so. No event is sent while it is set; an
	// admin enables the subscription again.
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	// EnabledAt is when an admin last enabled it again: events before
	// then are not sent.
	EnabledAt time.Time `json:"enabled_at,omitzero"`
	// SecretRotatedAt is when an admin last replaced the secret. The
	// secret before it (PreviousSecret, never returned) signs deliveries
	// too, beside the new one, until PreviousSecretExpiresAt, so
	// receivers can move to the new one without refusing a delivery.
	SecretRotatedAt         time.Time `json:"secret_rotated_at,omitzero"`
	PreviousSecret          string    `json:"previous_secret,omitempty"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`
}

// WithoutSecrets is s as listed: secrets are shown once, when made.
func (s Subscription) WithoutSecrets() Subscription {
	s.Secret, s.PreviousSecret = "", ""
	return s
}

// RotateSecret is what an admin sends to replace a subscription's
// secret: how long the old one keeps signing beside it (default 24h; 0
// stops it at once, for a secret that leaked).
type RotateSecret struct {
	Grace *Duration `json:"grace,omitempty"`
}

// NewSubscription is what an admin sends to subscribe.
type NewSubscription struct {
	URL         string   `json:"url"`
	Events      []string `json:"events,omitempty"`
	Models      []string `json:"models,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Delivery is one event on its way to one subscription, with every
// attempt made.
type Delivery struct {
	ID           string          `json:"id"` // the webhook-id header: the same on every attempt
	Subscription string          `json:"subscription"`
	Type         string          `json:"type"`
	Payload      json.RawMessage `json:"payload"`
	Status       string          `json:"status"` // pending, delivered, failed
	Attempts     []Attempt       `json:"attempts,omitempty"`
	NextAt       time.Time       `json:"next_at,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	// ClaimedBy is the replica sending the current attempt, until
	// ClaimUntil: one replica sends each attempt.
	ClaimedBy  string    `json:"claimed_by,omitempty"`
	ClaimUntil time.Time `json:"claim_until,omitempty"`
	Revision   uint64    `json:"revision"` // filled in on read
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // every retry of the schedule failed
)

// Attempt is one try to deliver.
type Attempt struct {
	Time       time.Time `json:"time"`
	Replica    string    `json:"replica"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	Millis     int64     `json:"millis"`
	// RetryAfter is the endpoint's Retry-After, in seconds, when it sent
	// one with a failure: the next attempt waits at least that long.
	RetryAfter int64 `json:"retry_after_seconds,omitempty"`
}
