package edge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/sentimentpro/sentiment/internal/backoff"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// WatchConfig says which channel a Watcher follows.
type WatchConfig struct {
	Client  *regclient.Client
	Model   string
	Channel string
	Region  string
	// Wait bounds one long-poll (default 30s).
	Wait   time.Duration
	Logger *slog.Logger
}

// Watcher follows a channel's resolution for a region through the
// registry's long-poll: one blocking read at a time, woken once per change.
// Its calls go through a circuit breaker with backoff. The Syncer runs one;
// the scale harness's simulated followers run it too.
type Watcher struct {
	cfg     WatchConfig
	log     *slog.Logger
	breaker *gobreaker.CircuitBreaker[wire.Resolution]
}

// NewWatcher returns a Watcher of cfg's channel.
func NewWatcher(cfg WatchConfig) *Watcher {
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger}
	w.breaker = gobreaker.NewCircuitBreaker[wire.Resolution](gobreaker.Settings{
		Name:        "registry",
		MaxRequests: 1,
		Timeout:     5 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		// A 4xx (no target yet, unknown model) is an answer, not an outage.
		IsSuccessful: func(err error) bool {
			var ae *regclient.APIError
			return err == nil || errors.As(err, &ae) && ae.Status < 500 || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			w.log.Warn("registry breaker changed state", "from", from.String(), "to", to.String())
			breakerState(name).Set(float64(to))
		},
	})
	return w
}

// Run calls apply with every new resolution until ctx is done. An apply
// error other than ErrRejected is retried with backoff (the same
// resolution comes back at once); ErrRejected moves on.
func (w *Watcher) Run(ctx context.Context, apply func(context.Context, wire.Resolution) error) {
	var index uint64
	wait := backoff.Backoff{First: 250 * time.Millisecond, Max: 15 * time.Second}
	fail := func(err error) {
		syncErrors.Inc()
		d := wait.Next()
		w.log.Warn("model sync failed; still serving the current model", "err", err, "retry_in", d)
		backoff.Sleep(ctx, d)
	}
	for ctx.Err() == nil {
		res, err := w.breaker.Execute(func() (wire.Resolution, error) {
			return w.cfg.Client.Resolve(ctx, w.cfg.Model, w.cfg.Channel, w.cfg.Region, index, w.cfg.Wait)
		})
		if ctx.Err() != nil {
			return
		}
		if regclient.IsStatus(err, http.StatusNotFound) {
			// Nothing promoted for us yet: ask again shortly.
			backoff.Sleep(ctx, time.Second)
			continue
		}
		if err != nil {
			fail(err)
			continue
		}
		if err := apply(ctx, res); err != nil && !errors.Is(err, ErrRejected) {
			fail(err)
			continue // index unchanged: the next call returns at once
		}
		wait.Reset()
		index = res.Revision
		lastSync.Set(float64(time.Now().Unix()))
	}
}
