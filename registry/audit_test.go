package registry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/s3"
)

// countingStore counts the objects read through it.
type countingStore struct {
	store.Store
	opens atomic.Int64
}

func (c *countingStore) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	c.opens.Add(1)
	return c.Store.Open(ctx, key, offset, length)
}

// TestAuditReadStaysFlat: a day of 10,000 refusals (anyone who reaches the
// registry can add them) and 60 actions in the S3 server; the webhook
// dispatcher's query, the last 30 s, reads only the entries of its window,
// and a query of the refusals finds them in their own trail (#29,
// finding 2: it read every object of the day, every second).
func TestAuditReadStaysFlat(t *testing.T) {
	srv := sharedS3(t)
	st, err := s3.New(srv.Config(testenv.NewBucket(t, srv, "audit")))
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingStore{Store: st}
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	reg, err := registry.New(registry.Config{Store: counting, Now: func() time.Time { return noon }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const refusals, actions = 10_000, 60
	var wg sync.WaitGroup
	work := make(chan wire.AuditEntry)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if _, err := reg.Audit(ctx, e); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// The day up to noon: refusals all morning, an action a minute in the
	// last hour.
	for i := range refusals {
		work <- wire.AuditEntry{Action: "auth_denied", Result: "denied", Detail: "unknown token",
			Time: noon.Add(-12 * time.Hour).Add(time.Duration(i) * (12 * time.Hour / refusals))}
	}
	for i := range actions {
		work <- wire.AuditEntry{Action: "promote", Result: "ok", Model: "m", Channel: "production", Version: fmt.Sprint("v", i),
			Time: noon.Add(-time.Hour).Add(time.Duration(i) * time.Minute).Add(time.Second)}
	}
	close(work)
	wg.Wait()

	counting.opens.Store(0)
	window, err := reg.QueryAudit(ctx, registry.AuditQuery{Since: noon.Add(-90 * time.Second), Until: noon, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	read := counting.opens.Load()
	t.Logf("the dispatcher's query (90 s) over a day of %d entries: %d entries, %d objects read", refusals+actions, len(window), read)
	if len(window) != 1 || window[0].Version != "v59" {
		t.Errorf("the last 90 s hold v59's promote alone; the query found %d entries", len(window))
	}
	if read > int64(len(window)) {
		t.Errorf("the query read %d objects for %d entries in its window: it scans the day", read, len(window))
	}

	counting.opens.Store(0)
	hour, err := reg.QueryAudit(ctx, registry.AuditQuery{Since: noon.Add(-time.Hour), Until: noon, Limit: 1000})
	if err != nil || len(hour) != actions || counting.opens.Load() != actions {
		t.Errorf("the last hour: %d entries (want %d), %d objects read, %v", len(hour), actions, counting.opens.Load(), err)
	}
	denied, err := reg.QueryAudit(ctx, registry.AuditQuery{Action: "auth_denied", Since: noon.Add(-time.Minute), Until: noon, Limit: 1000})
	if err != nil || len(denied) < 10 || len(denied) > 16 {
		t.Errorf("the refusals of the last minute: %d (want about 14), %v", len(denied), err)
	}
}
