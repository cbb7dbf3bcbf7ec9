// Package webhook sends the registry's events to subscribed endpoints,
// signed per the Standard Webhooks specification (webhook-id,
// webhook-timestamp, webhook-signature: HMAC-SHA256 of
// "id.timestamp.body" with the subscription's "whsec_" secret).
//
// The audit trail is the outbox: every action the registry takes is an
// audit entry before anything else sees it, so the dispatcher reads new
// entries (with a look-back window, since replicas write entries a little
// out of order) and turns those that are events into one delivery per
// matching subscription. A delivery is a compare-and-swap document keyed
// by the entry's ID: creating it twice is a no-op, so every replica may
// dispatch. Each attempt is claimed by compare-and-swap, so one replica
// sends it; a failed one is tried again on the retry schedule (by default
// the specification's, about 27 hours); the log of attempts stays with
// the delivery. Delivery is at least once (a replica that dies after
// sending but before recording it leaves the attempt to be sent again):
// receivers deduplicate by webhook-id.
//
// Bucket layout (owned here):
//
//	webhooks/subscriptions/<id>/r<…>       subscription revisions (with the secret)
//	index/webhooks/<id>                    marker: an active subscription
//	webhooks/deliveries/<sub>/<msg>/r<…>   delivery revisions: status and attempts
//	webhooks/pending/<sub>/<msg>           marker: a delivery not yet finished
//	webhooks/cursor/r<…>                   how far the dispatcher has read the audit trail
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

// DefaultSchedule is the wait before each retry, after the first attempt
// fails: the Standard Webhooks recommendation, 27.5 hours in all.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Config configures webhooks; it is built in main.
type Config struct {
	Registry *registry.Registry
	Store    store.Store
	// ID names this replica in claims and attempt logs.
	ID string
	// Client sends deliveries (default: 15 s timeout, the low end of the
	// specification's 15 to 30 s; no redirects; no connection to an
	// address in Deny).
	Client *http.Client
	// Deny are the addresses no subscription may name and no delivery
	// may connect to, checked on every connection after DNS (so a name
	// that resolves there is refused too). main sets DefaultDeny.
	Deny []netip.Prefix
	// Schedule is the wait before each retry (default DefaultSchedule).
	Schedule []time.Duration
	// Tick is how often the dispatcher reads the audit trail and due
	// deliveries are sent (default 1s); Lookback is how far behind its
	// cursor it reads again (default 30s).
	Tick, Lookback time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Manager keeps subscriptions and sends deliveries.
type Manager struct {
	cfg Config
	log *slog.Logger

	// held are the subscriptions whose endpoint said it is overloaded,
	// and until when this replica sends them nothing.
	mu   sync.Mutex
	held map[string]time.Time
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Registry == nil || cfg.Store == nil || cfg.ID == "" {
		return nil, errors.New("webhook: a registry, a store and a replica ID are required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second, Transport: transport(cfg.Deny)}
	}
	// A redirect is an answer, not a delivery: the endpoint is what was
	// subscribed.
	cfg.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "webhook", "replica", cfg.ID), held: map[string]time.Time{}}, nil
}

// ParseSchedule reads "5s,5m,30m,2h".
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("retry schedule %q: want positive durations like 5s,5m,30m", s)
		}
		out = append(out, d)
	}
	return out, nil
}

func subKey(id string) string            { return "webhooks/subscriptions/" + id }
func subIndexKey(id string) string       { return "index/webhooks/" + id }
func deliveryKey(sub, msg string) string { return "webhooks/deliveries/" + sub + "/" + msg }
func pendingKey(sub, msg string) string  { return "webhooks/pending/" + sub + "/" + msg }

const cursorKey = "webhooks/cursor"

// subscription is a subscription as stored.
type subscription struct {
	wire.Subscription
	Deleted bool `json:"deleted,omitempty"`
}

// Subscribe creates a subscription and returns it with its secret.
func (m *Manager) Subscribe(ctx context.Context, ns wire.NewSubscription, actor string) (wire.Subscription, error) {
	if err := validate(ns, m.cfg.Deny); err != nil {
		return wire.Subscription{}, err
	}
	id, secret := "wh_"+randomHex(8), newSecret()
	s := subscription{Subscription: wire.Subscription{ID: id, URL: ns.URL, Events: ns.Events, Models: ns.Models,
		Description: ns.Description, Secret: secret, Actor: actor, CreatedAt: m.cfg.Now().UTC()}}
	data, err := json.Marshal(s)
	if err != nil {
		return wire.Subscription{}, err
	}
	if _, err := store.WriteDoc(ctx, m.cfg.Store, subKey(id), data, 0); err != nil {
		return wire.Subscription{}, registry.StoreErr("cannot store the subscription", err)
	}
	if _, err := m.cfg.Store.Put(ctx, subIndexKey(id), strings.NewReader(""), 0); err != nil {
		return wire.Subscription{}, registry.StoreErr("cannot index the subscription", err)
	}
	return s.Subscription, nil
}

// validate checks a new subscription. A URL whose host is an address in
// deny is refused here; a name is checked when a delivery connects.
func validate(ns wire.NewSubscription, deny []netip.Prefix) error {
	u, err := url.Parse(ns.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(ns.URL) > 2048 {
		return fmt.Errorf("%w: url must be an http(s) URL of at most 2048 bytes", wire.ErrInvalid)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		// Linux connects to an address whatever zone it names, so a zone
		// only hides the address from the deny list: refuse it.
		if a.Zone() != "" {
			return fmt.Errorf("%w: url host %s names an IPv6 zone; give the address alone", wire.ErrInvalid, a)
		}
		if denied(a, deny) {
			return fmt.Errorf("%w: url host %s %v", wire.ErrInvalid, a, errDenied)
		}
	}
	if u.User != nil {
		return fmt.Errorf("%w: url must not carry credentials; deliveries are signed", wire.ErrInvalid)
	}
	for _, e := range ns.Events {
		if !slices.Contains(wire.EventTypes, e) {
			return fmt.Errorf("%w: unknown event %q; events are %s", wire.ErrInvalid, e, strings.Join(wire.EventTypes, ", "))
		}
	}
	if len(ns.Models) > 100 {
		return fmt.Errorf("%w: at most 100 models", wire.ErrInvalid)
	}
	for _, name := range ns.Models {
		if err := wire.ValidateName("model", name); err != nil {
			return err
		}
	}
	if len(ns.Description) > 1024 {
		return fmt.Errorf("%w: description longer than 1024 bytes", wire.ErrInvalid)
	}
	return nil
}

// Subscriptions returns the active subscriptions, secrets included (for
// signing; the API strips them).
func (m *Manager) Subscriptions(ctx context.Context) ([]wire.Subscription, error) {
	infos, err := m.cfg.Store.List(ctx, "index/webhooks/", "", 0)
	if err != nil {
		return nil, registry.StoreErr("cannot list subscriptions", err)
	}
	out := []wire.Subscription{}
	for _, info := range infos {
		s, _, err := m.subscription(ctx, strings.TrimPrefix(info.Key, "index/webhooks/"))
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s.Subscription)
	}
	return out, nil
}

func (m *Manager) subscription(ctx context.Context, id string) (subscription, uint64, error) {
	if err := validID(id, "wh_"); err != nil {
		return subscription{}, 0, err
	}
	doc, err := store.ReadDoc(ctx, m.cfg.Store, subKey(id))
	if err != nil {
		return subscription{}, 0, registry.StoreErr("subscription "+id, err)
	}
	s, err := decodeSubscription(id, doc)
	return s, doc.Rev, err
}

// decodeSubscription reads a subscription's document; a deleted one is
// not found.
func decodeSubscription(id string, doc store.Doc) (subscription, error) {
	if doc.Rev == 0 {
		return subscription{}, fmt.Errorf("subscription %s: %w", id, registry.ErrNotFound)
	}
	var s subscription
	if err := json.Unmarshal(doc.Data, &s); err != nil {
		return subscription{}, fmt.Errorf("cannot decode subscription %s: %w", id, err)
	}
	if s.Deleted {
		return subscription{}, fmt.Errorf("subscription %s: %w", id, registry.ErrNotFound)
	}
	return s, nil
}

// Unsubscribe deletes a subscription; its deliveries not yet sent fail.
func (m *Manager) Unsubscribe(ctx context.Context, id string) error {
	if _, _, err := m.update(ctx, id, func(s *subscription) bool { s.Deleted = true; return true }); err != nil {
		return err
	}
	return registry.StoreErr("cannot unindex the subscription", m.cfg.Store.Delete(ctx, subIndexKey(id)))
}

// Enable sends events to a disabled subscription again, those that
// happen from now on (events while it was disabled are not sent);
// enabling an enabled one changes nothing. It returns the subscription
// without its secret.
func (m *Manager) Enable(ctx context.Context, id string) (wire.Subscription, error) {
	now := m.cfg.Now().UTC()
	s, _, err := m.update(ctx, id, func(s *subscription) bool {
		if s.DisabledAt.IsZero() {
			return false
		}
		s.DisabledAt, s.DisabledReason, s.EnabledAt = time.Time{}, "", now
		return true
	})
	return s.WithoutSecrets(), err
}

// DefaultGrace and MaxGrace bound how long a rotated secret keeps signing
// beside its successor.
const (
	DefaultGrace = 24 * time.Hour
	MaxGrace     = 7 * 24 * time.Hour
)

// RotateSecret gives a subscription a new secret and returns the
// subscription with it. The old secret signs deliveries too for grace
// (Standard Webhooks: several space-separated signatures), so receivers
// move to the new one without refusing a delivery; a grace of 0 stops it
// at once.
func (m *Manager) RotateSecret(ctx context.Context, id string, grace time.Duration) (wire.Subscription, error) {
	if grace < 0 || grace > MaxGrace {
		return wire.Subscription{}, fmt.Errorf("%w: grace %v: want 0 to %v", wire.ErrInvalid, grace, MaxGrace)
	}
	now := m.cfg.Now().UTC()
	s, _, err := m.update(ctx, id, func(s *subscription) bool {
		s.PreviousSecret, s.PreviousSecretExpiresAt = s.Secret, now.Add(grace)
		if grace == 0 {
			s.PreviousSecret, s.PreviousSecretExpiresAt = "", time.Time{}
		}
		s.Secret, s.SecretRotatedAt = newSecret(), now
		return true
	})
	s.PreviousSecret = ""
	return s, err
}

// disable stops deliveries to a subscription from at on, for reason. It
// reports whether this call disabled it (another may have first).
func (m *Manager) disable(ctx context.Context, id string, at time.Time, reason string) (bool, error) {
	_, changed, err := m.update(ctx, id, func(s *subscription) bool {
		if !s.DisabledAt.IsZero() {
			return false
		}
		s.DisabledAt, s.DisabledReason = at, reason
		return true
	})
	return changed, err
}

// update applies change to a subscription and stores it when change
// reports a change (changed), again when another replica wrote it
// meanwhile.
func (m *Manager) update(ctx context.Context, id string, change func(*subscription) bool) (wire.Subscription, bool, error) {
	if err := validID(id, "wh_"); err != nil {
		return wire.Subscription{}, false, err
	}
	var s subscription
	changed := false
	var refused error // the subscription's own error (not found, deleted), returned as it is
	_, err := store.UpdateDoc(ctx, m.cfg.Store, subKey(id), func(cur store.Doc) ([]byte, error) {
		s, refused = decodeSubscription(id, cur)
		if refused != nil {
			return nil, refused
		}
		if changed = change(&s); !changed {
			return nil, nil
		}
		return json.Marshal(s)
	})
	switch {
	case refused != nil:
		return wire.Subscription{}, false, refused
	case err != nil:
		return wire.Subscription{}, false, registry.StoreErr("cannot update the subscription "+id, err)
	}
	return s.Subscription, changed, nil
}

// validID checks an ID the API was given before it becomes part of a key.
func validID(id, prefix string) error {
	if !strings.HasPrefix(id, prefix) || len(id) > 128 || store.ValidateKey(id) != nil || strings.Contains(id, "/") {
		return fmt.Errorf("%w: %q is not a %s… ID", wire.ErrInvalid, id, prefix)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newSecret is a Standard Webhooks secret: "whsec_" and 32 random bytes
// in base64.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// signature is the webhook-signature value of a delivery sent at now:
// the secret's signature and, during a rotation's grace, the previous
// secret's, space-separated.
func signature(s wire.Subscription, id string, now time.Time, body []byte) (string, error) {
	sig, err := Sign(s.Secret, id, now.Unix(), body)
	if err != nil || s.PreviousSecret == "" || !now.Before(s.PreviousSecretExpiresAt) {
		return sig, err
	}
	old, err := Sign(s.PreviousSecret, id, now.Unix(), body)
	return sig + " " + old, err
}

// Sign returns the webhook-signature value of a message: "v1," and the
// base64 HMAC-SHA256, keyed by the secret's decoded bytes, of
// "id.timestamp.body".
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("secret is not whsec_ and base64: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// DefaultDeny is -webhook-deny's default: cloud metadata services
// (link-local 169.254.0.0/16 and fe80::/10, AWS's fd00:ec2::254, Alibaba's
// 100.100.100.200) and addresses that are no single host. A delivery to
// them could read or change the machine's credentials. Loopback and
// private networks are allowed, since receivers often live there; add
// them to refuse them.
const DefaultDeny = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,0.0.0.0/8,::/128,224.0.0.0/4,ff00::/8,255.255.255.255/32"

// errDenied is a delivery address in Config.Deny.
var errDenied = errors.New("is denied to webhook deliveries (-webhook-deny)")

// denied reports whether a is in deny. The zone is dropped first:
// netip.Prefix.Contains is false for any zoned address, while the kernel
// connects to the address whatever its zone.
func denied(a netip.Addr, deny []netip.Prefix) bool {
	a = a.WithZone("").Unmap()
	for _, p := range deny {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// transport is the deliveries' HTTP transport: it refuses to connect to
// an address in deny, whatever name led there.
func transport(deny []netip.Prefix) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("cannot parse the address %q: %w", address, err)
			}
			if denied(ap.Addr(), deny) {
				return fmt.Errorf("address %s %w", ap.Addr().WithZone("").Unmap(), errDenied)
			}
			return nil
		},
	}).DialContext
	return t
}
