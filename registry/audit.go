package registry

import (
	"net/http"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/internal/httperr"

	"github.com/sentimentpro/sentiment/store"
)

const auditDayFormat = "2006-01-02"

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
func (r *Registry) Audit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
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
		return AuditEntry{}, fmt.Errorf("cannot encode audit entry: %w", err)
	}
	key := "audit/" + e.Time.Format(auditDayFormat) + "/" + e.ID
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
	return AuditEntry{}, storeErr("cannot write audit entry", lastErr)
}

// Unaudited is the error of an action that took effect but whose audit
// entry could not be written (see Audit): the client learns both.
func Unaudited(done string, err error) error {
	return httperr.Wrap(http.StatusInternalServerError, done+", but its audit entry could not be written (it is in the registry's log)", err)
}

// AuditQuery selects audit entries; empty fields match everything.
type AuditQuery struct {
	Model, Channel, Actor, Action string
	Since, Until                  time.Time // default: the last 7 days
	Limit                         int       // default 100, at most 1000
}

// QueryAudit returns matching entries, oldest first.
func (r *Registry) QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Until.IsZero() {
		q.Until = r.now().UTC()
	}
	if q.Since.IsZero() {
		q.Since = q.Until.Add(-7 * 24 * time.Hour)
	}
	if q.Until.Before(q.Since) {
		return nil, fmt.Errorf("%w: until %s is before since %s", ErrInvalid, q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if q.Until.Sub(q.Since) > 366*24*time.Hour {
		return nil, fmt.Errorf("%w: a query spans at most 366 days", ErrInvalid)
	}
	q.Limit = clampLimit(q.Limit)
	var out []AuditEntry
	for day := q.Since.UTC().Truncate(24 * time.Hour); !day.After(q.Until); day = day.Add(24 * time.Hour) {
		prefix := "audit/" + day.Format(auditDayFormat) + "/"
		after := ""
		for {
			infos, err := r.store.List(ctx, prefix, after, 1000)
			if err != nil {
				return nil, storeErr("cannot list audit entries", err)
			}
			for _, info := range infos {
				e, err := r.readAudit(ctx, info.Key)
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

func (r *Registry) readAudit(ctx context.Context, key string) (AuditEntry, error) {
	data, err := store.ReadAll(ctx, r.store, key, 64<<10)
	if err != nil {
		return AuditEntry{}, storeErr("cannot read audit entry", err)
	}
	var e AuditEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return AuditEntry{}, fmt.Errorf("cannot decode audit entry %s: %w", key, err)
	}
	return e, nil
}

func (q AuditQuery) matches(e AuditEntry) bool {
	return (q.Model == "" || e.Model == q.Model) &&
		(q.Channel == "" || e.Channel == q.Channel) &&
		(q.Actor == "" || e.Actor == q.Actor) &&
		(q.Action == "" || strings.EqualFold(e.Action, q.Action)) &&
		!e.Time.Before(q.Since) && !e.Time.After(q.Until)
}
