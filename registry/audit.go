package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

const auditDayFormat = "2006-01-02"

// The audit trail is two trails: the actions (publish, promote, rollback,
// webhook and rollout changes, and their refusals by the admin rules),
// and the authentication and role refusals, which anyone who reaches the
// registry can add. Each is keyed <prefix><day>/<nanoseconds>-<random>,
// so a time range is listed from its first key and read no further than
// its last: the webhook dispatcher's reads each second stay the size of
// its window, however many refusals the day holds.
const (
	auditPrefix    = "audit/"
	refusalsPrefix = "audit-refusals/"
	// refusalAction is the action of a refused token or role; its entries
	// are in the refusals trail, queried with Action: refusalAction.
	refusalAction = "auth_denied"
)

// trail is the prefix of the trail an action's entries are in.
func trail(action string) string {
	if strings.EqualFold(action, refusalAction) {
		return refusalsPrefix
	}
	return auditPrefix
}

// auditWriteErrors counts entries that could not be stored after every
// retry; the RegistryAuditWriteFailing alert fires on any increase.
var auditWriteErrors = metrics.NewCounter(`registry_audit_write_errors_total`)

// Audit appends an entry. It fills ID and Time; the object key sorts by
// time, so queries list days in order.
//
// The audit rule: a write is retried three times and is not cut short by
// the client going away. If it still fails, the entry is logged in full
// (so it can be restored from the logs), registry_audit_write_errors_total
// is incremented, and an error is returned. A caller whose action has
// already taken effect reports it with Unaudited (HTTP 500: done, but not
// audited); a caller that refused the request keeps its refusal.
func (r *Registry) Audit(ctx context.Context, e wire.AuditEntry) (wire.AuditEntry, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e = bound(e)
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	if e.ID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		e.ID = fmt.Sprintf("%020d-%s", e.Time.UnixNano(), hex.EncodeToString(b))
	}
	data, err := json.Marshal(e)
	if err != nil {
		return wire.AuditEntry{}, fmt.Errorf("cannot encode audit entry: %w", err)
	}
	key := trail(e.Action) + e.Time.Format(auditDayFormat) + "/" + e.ID
	// An ID is written once: retrying the same entry after an ambiguous
	// failure cannot duplicate it.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		_, lastErr = r.store.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
		if lastErr == nil || errors.Is(lastErr, store.ErrExists) {
			return e, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
	}
	auditWriteErrors.Inc()
	r.log.Error("cannot write audit entry", "request_id", e.RequestID, "entry", string(data), "err", lastErr)
	return wire.AuditEntry{}, StoreErr("cannot write audit entry", lastErr)
}

// Unaudited is the error of an action that took effect but whose audit
// entry could not be written (see Audit): the client learns both.
func Unaudited(done string, err error) error {
	return httperr.Wrap(http.StatusInternalServerError, done+", but its audit entry could not be written (it is in the registry's log)", err)
}

// AuditQuery selects audit entries; empty fields match everything. The
// refusals of tokens and roles are a trail of their own: a query reads
// them only when Action is "auth_denied".
type AuditQuery struct {
	Model, Channel, Actor, Action string
	Since, Until                  time.Time // default: the last 7 days
	Limit                         int       // default 100, at most 1000
}

// QueryAudit returns matching entries, oldest first. It lists the range's
// keys only, from Since's to Until's, and reads each listed entry once.
func (r *Registry) QueryAudit(ctx context.Context, q AuditQuery) ([]wire.AuditEntry, error) {
	if q.Until.IsZero() {
		q.Until = r.now().UTC()
	}
	if q.Since.IsZero() {
		q.Since = q.Until.Add(-7 * 24 * time.Hour)
	}
	if q.Until.Before(q.Since) {
		return nil, fmt.Errorf("%w: until %s is before since %s", wire.ErrInvalid, q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if q.Until.Sub(q.Since) > 366*24*time.Hour {
		return nil, fmt.Errorf("%w: a query spans at most 366 days", wire.ErrInvalid)
	}
	q.Limit = clampLimit(q.Limit)
	var out []wire.AuditEntry
	for day := q.Since.UTC().Truncate(24 * time.Hour); !day.After(q.Until); day = day.Add(24 * time.Hour) {
		prefix := trail(q.Action) + day.Format(auditDayFormat) + "/"
		after := ""
		if day.Before(q.Since) { // the first day: start at Since's key
			after = prefix + fmt.Sprintf("%020d", q.Since.UnixNano())
		}
		for {
			infos, err := r.store.List(ctx, prefix, after, 1000)
			if err != nil {
				return nil, StoreErr("cannot list audit entries", err)
			}
			for _, info := range infos {
				if t, ok := keyTime(info.Key, prefix); ok && t > q.Until.UnixNano() {
					return out, nil // keys sort by time: the rest are later
				}
				e, err := r.readAudit(ctx, info.Key)
				if errors.Is(err, errUnreadableEntry) {
					// One bad object must not hide the rest of the trail.
					auditUnreadable.Inc()
					r.log.Warn("skipped an unreadable audit entry", "key", info.Key, "err", err)
					continue
				}
				if err != nil {
					return nil, err
				}
				if q.matches(e) {
					out = append(out, e)
					if len(out) == q.Limit {
						return out, nil
					}
				}
			}
			if len(infos) < 1000 {
				break
			}
			after = infos[len(infos)-1].Key
		}
	}
	return out, nil
}

// keyTime is the time, in Unix nanoseconds, an audit key was written at:
// the 20 digits after its day's prefix.
func keyTime(key, prefix string) (int64, bool) {
	digits, _, ok := strings.Cut(strings.TrimPrefix(key, prefix), "-")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	t, err := strconv.ParseInt(digits, 10, 64)
	return t, err == nil
}

// errUnreadableEntry marks an audit object that is too large or not an
// entry: queries skip it (and count it) rather than fail.
var errUnreadableEntry = errors.New("unreadable audit entry")

// auditUnreadable counts audit objects queries skipped.
var auditUnreadable = metrics.NewCounter(`registry_audit_unreadable_total`)

// maxAuditEntry bounds one stored entry; Audit keeps every entry well
// under it (see bound).
const maxAuditEntry = 64 << 10

func (r *Registry) readAudit(ctx context.Context, key string) (wire.AuditEntry, error) {
	data, err := store.ReadAll(ctx, r.store, key, maxAuditEntry)
	if errors.Is(err, store.ErrTooLarge) {
		return wire.AuditEntry{}, fmt.Errorf("%w: %v", errUnreadableEntry, err)
	}
	if err != nil {
		return wire.AuditEntry{}, StoreErr("cannot read audit entry", err)
	}
	var e wire.AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return wire.AuditEntry{}, fmt.Errorf("%w: cannot decode %s: %v", errUnreadableEntry, key, err)
	}
	return e, nil
}

// bound caps every free-form field of an entry, so no request, however
// long its path or body, makes an entry that readers cannot read back.
func bound(e wire.AuditEntry) wire.AuditEntry {
	short := func(s string) string { return truncate(s, 256) }
	e.Actor, e.Role, e.Action, e.Result = short(e.Actor), short(e.Role), short(e.Action), short(e.Result)
	e.Model, e.Version, e.Digest, e.Channel = short(e.Model), short(e.Version), short(e.Digest), short(e.Channel)
	e.RequestID, e.Route = short(e.RequestID), short(e.Route)
	e.Reason, e.Detail = truncate(e.Reason, 2048), truncate(e.Detail, 2048)
	e.Regions = slices.Clone(e.Regions[:min(len(e.Regions), 64)])
	for i, region := range e.Regions {
		e.Regions[i] = short(region)
	}
	return e
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (q AuditQuery) matches(e wire.AuditEntry) bool {
	return (q.Model == "" || e.Model == q.Model) &&
		(q.Channel == "" || e.Channel == q.Channel) &&
		(q.Actor == "" || e.Actor == q.Actor) &&
		(q.Action == "" || strings.EqualFold(e.Action, q.Action)) &&
		!e.Time.Before(q.Since) && !e.Time.After(q.Until)
}
