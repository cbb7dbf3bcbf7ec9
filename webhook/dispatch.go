package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/backoff"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

var (
	deliveriesOK     = metrics.NewCounter(`registry_webhook_attempts_total{result="delivered"}`)
	deliveriesFailed = metrics.NewCounter(`registry_webhook_attempts_total{result="failed"}`)
	deliveriesGaveUp = metrics.NewCounter(`registry_webhook_deliveries_abandoned_total`)
	// subscriptionsDisabled counts subscriptions stopped by a 410 Gone.
	subscriptionsDisabled = metrics.NewCounter(`registry_webhook_subscriptions_disabled_total`)
	webhookErrors         = metrics.NewCounter(`registry_webhook_errors_total`)
)

// EventType is the webhook event an audit entry is, or "".
func EventType(e wire.AuditEntry) string {
	if e.Result == "refused" && strings.Contains(e.Detail, registry.ErrQualityGate.Error()) {
		return wire.EventGateRefused
	}
	if e.Result != "ok" {
		return ""
	}
	switch e.Action {
	case "publish":
		return wire.EventVersionPublished
	case "delete":
		return wire.EventVersionDeleted
	case "promote", "rollback", "set_candidate", "clear_candidate":
		return wire.EventChannelMoved
	case "rollout_start", "rollout_step", "rollout_promote":
		return wire.EventRolloutStep
	case "rollout_rollback":
		return wire.EventRolloutRollback
	case "rollout_abort", "rollout_superseded":
		return wire.EventRolloutAborted
	}
	return ""
}

// wants reports whether s gets event, about model, that happened at:
// not while it is disabled, nor before it was created or last enabled.
func wants(s wire.Subscription, event, model string, at time.Time) bool {
	return s.DisabledAt.IsZero() && (len(s.Events) == 0 || slices.Contains(s.Events, event)) &&
		(len(s.Models) == 0 || slices.Contains(s.Models, model)) && !at.Before(s.CreatedAt) && !at.Before(s.EnabledAt)
}

// Run dispatches and delivers until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.dispatch(ctx); err != nil && ctx.Err() == nil {
			webhookErrors.Inc()
			m.log.Warn("cannot dispatch webhook events", "err", err)
		}
		if err := m.deliverDue(ctx); err != nil && ctx.Err() == nil {
			webhookErrors.Inc()
			m.log.Warn("cannot deliver webhooks", "err", err)
		}
	}
}

// cursor is how far the dispatcher has read the audit trail.
type cursor struct {
	Time time.Time `json:"time"`
}

// dispatch turns the audit entries since the cursor (less the look-back)
// into deliveries, then moves the cursor on.
func (m *Manager) dispatch(ctx context.Context) error {
	now := m.cfg.Now().UTC()
	var cur cursor
	doc, err := store.ReadDoc(ctx, m.cfg.Store, cursorKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The first replica with webhooks starts from now: no replay of
		// the whole trail.
		data, _ := json.Marshal(cursor{Time: now})
		_, err := store.WriteDoc(ctx, m.cfg.Store, cursorKey, data, 0)
		if errors.Is(err, store.ErrConflict) {
			err = nil
		}
		return err
	case err != nil:
		return err
	}
	if err := json.Unmarshal(doc.Data, &cur); err != nil {
		return fmt.Errorf("cannot decode the webhook cursor: %w", err)
	}
	subs, err := m.Subscriptions(ctx)
	if err != nil || len(subs) == 0 {
		return err
	}
	entries, err := m.cfg.Registry.QueryAudit(ctx, registry.AuditQuery{Since: cur.Time.Add(-m.cfg.Lookback), Until: now, Limit: 1000})
	if err != nil {
		return err
	}
	latest := cur.Time
	for _, e := range entries {
		if event := EventType(e); event != "" {
			for _, s := range subs {
				if wants(s, event, e.Model, e.Time) {
					if err := m.enqueue(ctx, s, event, e); err != nil {
						return err // the cursor stays: the next tick tries again
					}
				}
			}
		}
		if e.Time.After(latest) {
			latest = e.Time
		}
	}
	if !latest.After(cur.Time) {
		return nil
	}
	data, _ := json.Marshal(cursor{Time: latest})
	if _, err := store.WriteDoc(ctx, m.cfg.Store, cursorKey, data, doc.Rev); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// payload is the Standard Webhooks body: type, timestamp, data.
type payload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      wire.AuditEntry `json:"data"`
}

// enqueue creates the delivery of event e to s, once: the pending marker
// first, so a delivery never exists without one while it is pending.
func (m *Manager) enqueue(ctx context.Context, s wire.Subscription, event string, e wire.AuditEntry) error {
	msg := "msg_" + e.ID
	body, err := json.Marshal(payload{Type: event, Timestamp: e.Time, Data: e})
	if err != nil {
		return err
	}
	d := wire.Delivery{ID: msg, Subscription: s.ID, Type: event, Payload: body, Status: wire.DeliveryPending,
		CreatedAt: m.cfg.Now().UTC()}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := store.ReadDoc(ctx, m.cfg.Store, deliveryKey(s.ID, msg)); err == nil {
		return nil // read again in the look-back window: done before
	}
	if _, err := m.cfg.Store.Put(ctx, pendingKey(s.ID, msg), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	if _, err := store.WriteDoc(ctx, m.cfg.Store, deliveryKey(s.ID, msg), data, 0); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// deliverDue sends every pending delivery whose time has come and that
// no other replica has claimed, several subscriptions at once. A
// subscription's deliveries go in the order of their events (message IDs
// start with the entry's time) while its endpoint answers: a replica that
// finds one claimed by another leaves the rest to it. A failed delivery
// waits for its retry while later ones go on, so order is not kept across
// failures; receivers order by the payload's timestamp.
func (m *Manager) deliverDue(ctx context.Context) error {
	infos, err := m.cfg.Store.List(ctx, "webhooks/pending/", "", 0)
	if err != nil {
		return err
	}
	bySub := map[string][]string{}
	for _, info := range infos {
		if sub, msg, ok := strings.Cut(strings.TrimPrefix(info.Key, "webhooks/pending/"), "/"); ok {
			bySub[sub] = append(bySub[sub], msg) // List sorts keys: oldest first
		}
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for sub, msgs := range bySub {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, msg := range msgs {
				if m.isHeld(sub) {
					break // its endpoint asked for fewer requests
				}
				err := m.attempt(ctx, sub, msg)
				if errors.Is(err, errClaimed) || errors.Is(err, store.ErrConflict) {
					break // another replica is sending this subscription's deliveries: it keeps their order
				}
				if err != nil && ctx.Err() == nil {
					webhookErrors.Inc()
					m.log.Warn("cannot deliver a webhook", "subscription", sub, "delivery", msg, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func (m *Manager) readDelivery(ctx context.Context, sub, msg string) (wire.Delivery, error) {
	doc, err := store.ReadDoc(ctx, m.cfg.Store, deliveryKey(sub, msg))
	if err != nil {
		return wire.Delivery{}, err
	}
	var d wire.Delivery
	if err := json.Unmarshal(doc.Data, &d); err != nil {
		return wire.Delivery{}, fmt.Errorf("cannot decode delivery %s: %w", msg, err)
	}
	d.Revision = doc.Rev
	return d, nil
}

func (m *Manager) writeDelivery(ctx context.Context, d wire.Delivery) (wire.Delivery, error) {
	prev := d.Revision
	d.Revision = 0
	data, err := json.Marshal(d)
	if err != nil {
		return d, err
	}
	rev, err := store.WriteDoc(ctx, m.cfg.Store, deliveryKey(d.Subscription, d.ID), data, prev)
	d.Revision = rev
	return d, err
}

// errClaimed is a delivery another replica is sending.
var errClaimed = errors.New("claimed by another replica")

// attempt claims one due delivery, sends it and records the outcome.
func (m *Manager) attempt(ctx context.Context, sub, msg string) error {
	d, err := m.readDelivery(ctx, sub, msg)
	if errors.Is(err, store.ErrNotFound) {
		return nil // its document is being created, or a stray marker: the dispatcher makes it
	}
	if err != nil {
		return err
	}
	now := m.cfg.Now().UTC()
	if d.Status != wire.DeliveryPending {
		return m.dropMarker(ctx, sub, msg)
	}
	if d.ClaimedBy != "" && now.Before(d.ClaimUntil) {
		return errClaimed
	}
	if now.Before(d.NextAt) {
		return nil // a failed delivery waits for its retry; later ones go on
	}
	s, _, err := m.subscription(ctx, sub)
	gone := ""
	switch {
	case errors.Is(err, registry.ErrNotFound):
		gone = "the subscription was deleted"
	case err != nil:
		return err
	case !s.DisabledAt.IsZero():
		gone = "the subscription is disabled: " + s.DisabledReason
	}
	if gone != "" {
		d.Status, d.ClaimedBy = wire.DeliveryFailed, ""
		d.Attempts = append(d.Attempts, wire.Attempt{Time: now, Replica: m.cfg.ID, Error: gone})
		if _, err := m.writeDelivery(ctx, d); err != nil {
			return err
		}
		return m.dropMarker(ctx, sub, msg)
	}
	d.ClaimedBy, d.ClaimUntil = m.cfg.ID, now.Add(m.cfg.Client.Timeout+10*time.Second)
	if d, err = m.writeDelivery(ctx, d); err != nil {
		return err // another replica claimed it
	}
	a := m.send(ctx, s.Subscription, d)
	d.Attempts = append(d.Attempts, a)
	d.ClaimedBy, d.ClaimUntil = "", time.Time{}
	done := false
	asked := time.Duration(a.RetryAfter) * time.Second // the endpoint's Retry-After; send caps it at maxRetryAfter
	switch {
	case a.StatusCode >= 200 && a.StatusCode < 300:
		deliveriesOK.Inc()
		d.Status, done = wire.DeliveryDelivered, true
	case a.StatusCode == http.StatusGone:
		deliveriesFailed.Inc()
		d.Status, done = wire.DeliveryFailed, true
	case failures(d.Attempts) > len(m.cfg.Schedule):
		deliveriesFailed.Inc()
		deliveriesGaveUp.Inc()
		d.Status, done = wire.DeliveryFailed, true
		m.log.Warn("gave up a webhook delivery", "subscription", sub, "delivery", msg, "attempts", len(d.Attempts))
	default:
		deliveriesFailed.Inc()
		wait := jitter(m.cfg.Schedule[failures(d.Attempts)-1], sub)
		d.NextAt = a.Time.Add(max(wait, asked))
	}
	if overloaded(a) {
		m.hold(sub, a.Time.Add(max(m.cfg.Schedule[0], asked)))
	}
	if a.StatusCode == http.StatusGone {
		// Standard Webhooks: 410 is the receiver saying it wants no more.
		// The subscription is disabled before the delivery is recorded
		// failed, so whoever reads the failure finds it disabled.
		reason := fmt.Sprintf("the endpoint answered 410 Gone to delivery %s", msg)
		disabled, err := m.disable(ctx, sub, a.Time, reason)
		if err != nil {
			return err
		}
		if disabled {
			subscriptionsDisabled.Inc()
			m.log.Warn("disabled a webhook subscription", "subscription", sub, "delivery", msg, "reason", reason)
		}
	}
	if _, err := m.writeDelivery(ctx, d); err != nil {
		return err
	}
	if done {
		return m.dropMarker(ctx, sub, msg)
	}
	return nil
}

// dropMarker removes a finished delivery's pending marker. A redelivery
// asked for meanwhile has made the delivery pending again and put the
// marker back (an existing marker, for it): if the delivery is pending
// now, the marker is restored so the redelivery is not lost.
func (m *Manager) dropMarker(ctx context.Context, sub, msg string) error {
	if err := m.cfg.Store.Delete(ctx, pendingKey(sub, msg)); err != nil {
		return err
	}
	d, err := m.readDelivery(ctx, sub, msg)
	if err != nil || d.Status != wire.DeliveryPending {
		return err
	}
	if _, err := m.cfg.Store.Put(ctx, pendingKey(sub, msg), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// failures counts the failed attempts since the last success or
// redelivery.
func failures(as []wire.Attempt) int {
	n := 0
	for i := len(as) - 1; i >= 0 && !(as[i].StatusCode >= 200 && as[i].StatusCode < 300) && !strings.HasPrefix(as[i].Error, redelivered); i-- {
		n++
	}
	return n
}

// redelivered marks, in the attempt log, where an operator asked for a
// delivery again: the retry schedule starts over from there.
const redelivered = "redelivery requested"

// send makes one signed POST of the delivery's payload.
func (m *Manager) send(ctx context.Context, s wire.Subscription, d wire.Delivery) wire.Attempt {
	start := m.cfg.Now().UTC()
	a := wire.Attempt{Time: start, Replica: m.cfg.ID}
	sig, err := signature(s, d.ID, start, d.Payload)
	if err != nil {
		a.Error = "cannot sign: " + err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(d.Payload))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sentiment-registry-webhooks")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", fmt.Sprint(start.Unix()))
	req.Header.Set("webhook-signature", sig)
	resp, err := m.cfg.Client.Do(req)
	a.Millis = time.Since(start).Milliseconds()
	if err != nil {
		// The URL stays out of the error (it may carry a token in its
		// query); the subscription is named instead.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		a.Error = err.Error()
		return a
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.RetryAfter = int64(backoff.RetryAfter(resp.Header.Get("Retry-After"), m.cfg.Now(), maxRetryAfter) / time.Second)
	}
	return a
}

// jitter lengthens a retry's wait by up to a tenth, as the specification
// recommends, so the retries of subscriptions that failed together (a
// network outage) do not all come back at once. The share comes from the
// subscription's ID: its own deliveries wait alike and keep their order.
func jitter(wait time.Duration, sub string) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(sub))
	return wait + time.Duration(h.Sum64()%uint64(wait/10+1))
}

// overloaded reports whether an attempt's answer says the endpoint is
// overloaded: 429, 502, 503 or 504, or any failure with a Retry-After.
// The specification asks a sender to throttle then, so the endpoint's
// other deliveries wait too (hold).
func overloaded(a wire.Attempt) bool {
	switch a.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return a.RetryAfter > 0
}

// hold sends nothing more to sub from this replica until until.
func (m *Manager) hold(sub string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.After(m.held[sub]) {
		m.held[sub] = until
	}
}

// isHeld reports whether sub's deliveries wait for its endpoint.
func (m *Manager) isHeld(sub string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.held[sub]
	if ok && !m.cfg.Now().Before(until) {
		delete(m.held, sub)
		return false
	}
	return ok
}

// maxRetryAfter bounds how long an endpoint's Retry-After may hold a
// delivery back: the schedule's longest wait.
const maxRetryAfter = 24 * time.Hour

// Deliveries returns a subscription's deliveries, newest first, at most
// limit (default 100).
func (m *Manager) Deliveries(ctx context.Context, sub string, limit int) ([]wire.Delivery, error) {
	if _, _, err := m.subscription(ctx, sub); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	infos, err := m.cfg.Store.List(ctx, "webhooks/deliveries/"+sub+"/", "", 0)
	if err != nil {
		return nil, registry.StoreErr("cannot list deliveries", err)
	}
	var msgs []string
	for _, info := range infos {
		msg, _, _ := strings.Cut(strings.TrimPrefix(info.Key, "webhooks/deliveries/"+sub+"/"), "/")
		if len(msgs) == 0 || msgs[len(msgs)-1] != msg {
			msgs = append(msgs, msg)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(msgs))) // message IDs start with the entry's time
	out := []wire.Delivery{}
	for _, msg := range msgs[:min(limit, len(msgs))] {
		d, err := m.readDelivery(ctx, sub, msg)
		if err != nil {
			return nil, registry.StoreErr("cannot read delivery "+msg, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Redeliver sends a delivery again at once, with the same webhook-id,
// whatever its status; its retry schedule starts over.
func (m *Manager) Redeliver(ctx context.Context, sub, msg, actor string) (wire.Delivery, error) {
	s, _, err := m.subscription(ctx, sub)
	if err != nil {
		return wire.Delivery{}, err
	}
	if !s.DisabledAt.IsZero() {
		return wire.Delivery{}, fmt.Errorf("%w: subscription %s is disabled (%s); enable it first", registry.ErrConflict, sub, s.DisabledReason)
	}
	if err := validID(msg, "msg_"); err != nil {
		return wire.Delivery{}, err
	}
	d, err := m.readDelivery(ctx, sub, msg)
	if err != nil {
		return wire.Delivery{}, registry.StoreErr("delivery "+msg, err)
	}
	now := m.cfg.Now().UTC()
	d.Status, d.NextAt, d.ClaimedBy, d.ClaimUntil = wire.DeliveryPending, now, "", time.Time{}
	d.Attempts = append(d.Attempts, wire.Attempt{Time: now, Replica: m.cfg.ID, Error: redelivered + " by " + actor})
	// The status first, then the marker: a replica finishing the last
	// attempt either sees the delivery pending again (and keeps its
	// marker) or deleted its marker before this one is put.
	if d, err = m.writeDelivery(ctx, d); err != nil {
		return wire.Delivery{}, registry.StoreErr("cannot queue the delivery", err)
	}
	if _, err := m.cfg.Store.Put(ctx, pendingKey(sub, msg), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
		return wire.Delivery{}, registry.StoreErr("cannot queue the delivery", err)
	}
	return d, nil
}
