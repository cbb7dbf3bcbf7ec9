// Package registry is the model registry: immutable, checksummed and signed
// model versions, channels (named pointers such as "production", with
// per-region overrides) moved by compare-and-swap, a long-poll watch, and an
// append-only audit trail. All state lives in a store.Store, so the service
// is stateless and runs as several replicas on one bucket.
//
// Bucket layout (owned here):
//
//	blobs/sha256/<hex>                 artifact bytes, verified before they land
//	models/<model>/versions/<version>  version metadata (JSON), write-once
//	tombstones/<model>/<version>       a deleted version's metadata: the name is never reused
//	index/models/<model>               marker: the model exists
//	channels/<model>/<channel>/r<…>    channel document revisions (store.WriteDoc)
//	audit/<yyyy-mm-dd>/<time>-<rand>   one JSON object per audit entry
package registry

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

// Errors the HTTP layer maps to status codes.
var (
	ErrNotFound    = errors.New("not found")            // 404
	ErrConflict    = errors.New("conflict")             // 409
	ErrTooLarge    = errors.New("artifact too large")   // 413
	ErrDigest      = errors.New("digest mismatch")      // 400
	ErrBadArtifact = errors.New("not a valid artifact") // 422
	ErrUnsigned    = errors.New("signature required")   // 422
	ErrQualityGate = errors.New("quality gate refused") // 409
	ErrForbidden   = errors.New("forbidden")            // 403
	ErrStoreDown   = errors.New("storage unavailable")  // 503
)

// Config configures a Registry; it is built in main.
type Config struct {
	Store store.Store
	// TrustedKeys verify version signatures; when any is set, every version
	// must carry a valid signature (RequireSignatures is implied).
	// RequireSignatures without keys is an error.
	// versions without a valid one.
	TrustedKeys       []ed25519.PublicKey
	RequireSignatures bool
	// MaxArtifactBytes caps one upload (default 512 MiB).
	MaxArtifactBytes int64
	// WatchPoll is how often a replica re-reads channels that have
	// watchers, to see moves made through other replicas (default 200ms).
	WatchPoll time.Duration
	// MaxWatchesPerClient caps the blocking reads one client (a token at
	// one address, IPv6 by /64: an edge) has waiting at once on a replica
	// (default 16: an edge follows a channel or a few). Whoever else holds
	// the token cannot take the edges' places.
	MaxWatchesPerClient int
	// MaxWatchesPerToken caps one token's blocking reads on a replica, all
	// clients together: a bound on memory (default 4096; every edge of a
	// fleet may share one reader token).
	MaxWatchesPerToken int
	// MaxBlobStreams caps the artifact downloads this replica streams at
	// once (default 64); past it a download is answered 503 with
	// Retry-After, which the edges honour: a promote to a large fleet
	// cannot stampede the replica or the bucket behind it.
	MaxBlobStreams int
	Logger         *slog.Logger
	Now            func() time.Time
}

// Registry implements the registry's operations over a store.
type Registry struct {
	store    store.Store
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	hub      *watchHub
	reads    readCache
	chanLock sync.Map // doc key -> *sync.Mutex: serialises moves within a replica
}

// New returns a Registry.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("registry: a store is required")
	}
	if cfg.MaxArtifactBytes <= 0 {
		cfg.MaxArtifactBytes = 512 << 20
	}
	if cfg.WatchPoll <= 0 {
		cfg.WatchPoll = 200 * time.Millisecond
	}
	if cfg.MaxWatchesPerClient <= 0 {
		cfg.MaxWatchesPerClient = 16
	}
	if cfg.MaxWatchesPerToken <= 0 {
		cfg.MaxWatchesPerToken = 4096
	}
	if cfg.MaxBlobStreams <= 0 {
		cfg.MaxBlobStreams = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequireSignatures && len(cfg.TrustedKeys) == 0 {
		return nil, errors.New("registry: signatures are required but no trusted key is configured")
	}
	// Keys that are configured are meant to be used: with trusted keys
	// an unsigned version is refused, not waved through.
	cfg.RequireSignatures = cfg.RequireSignatures || len(cfg.TrustedKeys) > 0
	r := &Registry{store: cfg.Store, cfg: cfg, log: cfg.Logger.With("component", "registry"), now: cfg.Now}
	r.hub = newWatchHub(r)
	return r, nil
}

// Check reports whether the store is reachable (the readiness check).
func (r *Registry) Check(ctx context.Context) error {
	if c, ok := r.store.(interface{ Check(context.Context) error }); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("%w: %v", ErrStoreDown, err)
		}
		return nil
	}
	_, err := r.store.List(ctx, "index/", "", 1)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStoreDown, err)
	}
	return nil
}

// StoreErr maps store failures for clients: missing objects stay
// ErrNotFound, a lost compare-and-swap is ErrConflict, a cancelled
// request stays cancelled, anything else is the store being unavailable
// (nil stays nil). Rollouts and webhooks map theirs with it too.
func StoreErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%s: %w", op, ErrConflict)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case errors.Is(err, store.ErrInvalidKey): // a name no check caught: the client's, not the store's
		return fmt.Errorf("%s: %w: %v", op, wire.ErrInvalid, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	default:
		return fmt.Errorf("%s: %w: %v", op, ErrStoreDown, err)
	}
}
