package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/webhook"
)

// mountWebhooks adds the webhook routes; all need the admin role.
func (ad *admin) mountWebhooks(a *registry.API) {
	a.Handle("POST /v1/admin/webhooks", registry.RoleAdmin, ad.subscribe)
	a.Handle("GET /v1/admin/webhooks", registry.RoleAdmin, ad.listWebhooks)
	a.Handle("DELETE /v1/admin/webhooks/{id}", registry.RoleAdmin, ad.unsubscribe)
	a.Handle("POST /v1/admin/webhooks/{id}/enable", registry.RoleAdmin, ad.enableWebhook)
	a.Handle("POST /v1/admin/webhooks/{id}/rotate-secret", registry.RoleAdmin, ad.rotateWebhookSecret)
	a.Handle("GET /v1/admin/webhooks/{id}/deliveries", registry.RoleAdmin, ad.deliveries)
	a.Handle("POST /v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver", registry.RoleAdmin, ad.redeliver)
}

func (ad *admin) webhooks() (*webhook.Manager, error) {
	if ad.cfg.Webhooks == nil {
		return nil, httperr.New(http.StatusServiceUnavailable, "webhooks are not enabled on this registry")
	}
	return ad.cfg.Webhooks, nil
}

// webhookEntry is the audit entry of a webhook change: the endpoint's
// host only (a URL may carry a token), never the secret.
func webhookEntry(r *http.Request, p registry.Principal, action, id, endpoint string) wire.AuditEntry {
	detail := "subscription " + id
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		detail += " to " + u.Scheme + "://" + u.Host
	}
	return wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: action, Result: "ok", Detail: detail,
		RequestID: registry.RequestID(r.Context())}
}

// audited writes the entry of a change that took effect and the answer.
func (ad *admin) audited(w http.ResponseWriter, r *http.Request, entry wire.AuditEntry, code int, body any) error {
	if _, err := ad.reg.Audit(r.Context(), entry); err != nil {
		return registry.Unaudited(entry.Detail+" "+entry.Action+" was done", err)
	}
	registry.WriteJSON(w, code, body)
	return nil
}

func (ad *admin) subscribe(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	var ns wire.NewSubscription
	if err := registry.ReadJSON(r, 64<<10, &ns); err != nil {
		return err
	}
	s, err := m.Subscribe(r.Context(), ns, p.Name)
	if err != nil {
		return err
	}
	return ad.audited(w, r, webhookEntry(r, p, "webhook_subscribe", s.ID, s.URL), http.StatusCreated, s)
}

func (ad *admin) listWebhooks(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	subs, err := m.Subscriptions(r.Context())
	if err != nil {
		return err
	}
	for i := range subs {
		subs[i] = subs[i].WithoutSecrets()
	}
	registry.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": subs})
	return nil
}

func (ad *admin) unsubscribe(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := m.Unsubscribe(r.Context(), id); err != nil {
		return err
	}
	return ad.audited(w, r, webhookEntry(r, p, "webhook_unsubscribe", id, ""), http.StatusOK, map[string]string{"deleted": id})
}

// enableWebhook sends events again to a subscription a 410 Gone disabled.
func (ad *admin) enableWebhook(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	s, err := m.Enable(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return ad.audited(w, r, webhookEntry(r, p, "webhook_enable", s.ID, s.URL), http.StatusOK, s)
}

func (ad *admin) deliveries(w http.ResponseWriter, r *http.Request, _ registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return httperr.New(http.StatusBadRequest, "limit %q: want 1 to 1000", s)
		}
	}
	ds, err := m.Deliveries(r.Context(), r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	registry.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	return nil
}

func (ad *admin) redeliver(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	id, msg := r.PathValue("id"), r.PathValue("delivery")
	d, err := m.Redeliver(r.Context(), id, msg, p.Name)
	if err != nil {
		return err
	}
	entry := webhookEntry(r, p, "webhook_redeliver", id, "")
	entry.Detail += " delivery " + msg
	return ad.audited(w, r, entry, http.StatusOK, d)
}

// rotateWebhookSecret gives a subscription a new secret; the old one signs
// beside it for the grace asked (default 24h).
func (ad *admin) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	m, err := ad.webhooks()
	if err != nil {
		return err
	}
	var req wire.RotateSecret
	if r.ContentLength != 0 {
		if err := registry.ReadJSON(r, 4<<10, &req); err != nil {
			return err
		}
	}
	grace := webhook.DefaultGrace
	if req.Grace != nil {
		grace = time.Duration(*req.Grace)
	}
	s, err := m.RotateSecret(r.Context(), r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	entry := webhookEntry(r, p, "webhook_rotate_secret", s.ID, s.URL)
	entry.Detail += fmt.Sprintf(", the old secret signing for %v more", grace)
	return ad.audited(w, r, entry, http.StatusOK, s)
}
