package edge

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/distrib"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// SyncConfig says which channel an edge follows and how it trusts what it
// downloads.
type SyncConfig struct {
	Client  *regclient.Client
	Model   string
	Channel string
	Region  string
	// CacheDir keeps verified artifacts and a pointer to the last good one,
	// so a restarted edge serves at once without the registry.
	CacheDir string
	// TrustedKeys verify artifact signatures; RequireSignature refuses
	// unsigned versions.
	TrustedKeys      []ed25519.PublicKey
	RequireSignature bool
	// Wait bounds one long-poll (default 30s).
	Wait   time.Duration
	Logger *slog.Logger
	// OnChange is called after a new model is swapped in (e.g. to update
	// Consul meta); OnReject when a version fails verification or loading.
	OnChange func(*Serving)
	OnReject func(version string, err error)
	// ONNX serves ONNX bundles; without its runtime they are refused.
	ONNX ONNXConfig
	// Fetcher downloads artifacts (from same-region peers when it has a
	// Finder); nil: from the registry only.
	Fetcher *distrib.Fetcher
	// OnArtifacts is called with the digests of the verified artifacts in
	// the cache whenever they change (the blob server advertises them).
	OnArtifacts func(digests []string)
}

// cachePointer is <CacheDir>/current.json: the last model that verified
// and loaded.
type cachePointer struct {
	Model     string           `json:"model"`
	Channel   string           `json:"channel"`
	Region    string           `json:"region"`
	Version   string           `json:"version"`
	Digest    string           `json:"digest"`
	Revision  uint64           `json:"revision"`
	Signature *model.Signature `json:"signature,omitempty"`
	// Candidate is the rollout candidate the edge held, so a restart
	// without the registry keeps the split it had.
	Candidate *cachedCandidate `json:"candidate,omitempty"`
}

// cachedCandidate is a held candidate in the cache pointer.
type cachedCandidate struct {
	Version   string           `json:"version"`
	Digest    string           `json:"digest"`
	Signature *model.Signature `json:"signature,omitempty"`
	Percent   float64          `json:"percent"`
	Shadow    float64          `json:"shadow,omitempty"`
}

// Syncer follows a channel through the registry's watch and hot-swaps the
// server's model. Calls to the registry go through a circuit breaker with
// backoff; verification failures are remembered so a bad version is not
// fetched again and again.
type Syncer struct {
	cfg      SyncConfig
	srv      *Server
	slot     *Slot // the model's, in srv
	log      *slog.Logger
	watcher  *Watcher
	rejected map[string]error
}

// errRejected marks a version that failed verification: permanent for
// that digest, unlike a network error.
var errRejected = ErrRejected

// ErrRejected marks a version that failed verification: permanent for
// that digest, unlike a network error. A Watcher's apply returns it (or
// wraps it) to move on to the next change without retrying.
var ErrRejected = errors.New("rejected")

// NewSyncer returns a syncer that swaps cfg.Model's versions into its slot
// of srv: srv must serve that model.
func NewSyncer(srv *Server, cfg SyncConfig) *Syncer {
	slot := srv.Slot(cfg.Model)
	if slot == nil {
		panic(fmt.Sprintf("edge: NewSyncer for model %q, which the server does not serve (%s)", cfg.Model, srv.modelList()))
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Configured keys mean signatures are required: an unsigned artifact
	// is refused, not waved through.
	cfg.RequireSignature = cfg.RequireSignature || len(cfg.TrustedKeys) > 0
	if cfg.Fetcher == nil {
		cfg.Fetcher = &distrib.Fetcher{Registry: distrib.Registry{Client: cfg.Client}}
	}
	if cfg.Fetcher.MaxBytes <= 0 {
		cfg.Fetcher.MaxBytes = MaxArtifactBytes
	}
	if cfg.Fetcher.Log == nil {
		cfg.Fetcher.Log = cfg.Logger.With("component", "model-fetch")
	}
	s := &Syncer{cfg: cfg, srv: srv, slot: slot, log: cfg.Logger.With("component", "model-sync", "model", cfg.Model), rejected: map[string]error{}}
	s.watcher = NewWatcher(WatchConfig{Client: cfg.Client, Model: cfg.Model, Channel: cfg.Channel, Region: cfg.Region, Wait: cfg.Wait, Logger: s.log})
	return s
}

// blobPath is where a verified artifact is cached, in either format. The
// .sapm suffix is older than ONNX bundles; it stays so that an upgraded
// edge still finds what it cached before.
func (s *Syncer) blobPath(digest string) string { return BlobPath(s.cfg.CacheDir, digest) }

// BlobPath is where an edge with cacheDir keeps the verified artifact with
// digest: what its blob server serves to peers.
func BlobPath(cacheDir, digest string) string {
	return filepath.Join(cacheDir, "blobs", strings.TrimPrefix(digest, "sha256:")+".sapm")
}

// pointerPath is the model's cache pointer. An edge that served one model
// kept it in current.json: LoadCached still reads that one when the
// model's own is missing.
func (s *Syncer) pointerPath() string {
	return filepath.Join(s.cfg.CacheDir, "current-"+s.cfg.Model+".json")
}

func (s *Syncer) readPointer() ([]byte, string, error) {
	path := s.pointerPath()
	data, err := model.ReadFileLimited(path, 64<<10)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(s.cfg.CacheDir, "current.json")
		data, err = model.ReadFileLimited(path, 64<<10)
	}
	return data, path, err
}

// LoadCached serves the last good model from the cache directory, without
// the registry. It reports whether there was one.
func (s *Syncer) LoadCached() (bool, error) {
	data, path, err := s.readPointer()
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read model cache pointer: %w", err)
	}
	var ptr cachePointer
	if err := json.Unmarshal(data, &ptr); err != nil {
		return false, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	if ptr.Model != s.cfg.Model || ptr.Channel != s.cfg.Channel {
		return false, nil // cached for another model or channel
	}
	start := time.Now()
	sv, err := s.loadCached(ptr.Version, ptr.Digest, ptr.Signature)
	if err != nil {
		return false, err
	}
	s.advertise()
	s.slot.Swap(sv)
	s.log.Info("serving cached model", "version", sv.Version, "digest", sv.Digest, "load_ms", time.Since(start).Milliseconds())
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(sv)
	}
	if c := ptr.Candidate; c != nil {
		if err := s.loadCachedCandidate(c); err != nil {
			s.log.Warn("cached rollout candidate is unusable; the cached model answers everything", "version", c.Version, "err", err)
		}
	}
	return true, nil
}

// loadCachedCandidate holds the candidate the edge held before it
// restarted, verified again, with the share it had.
func (s *Syncer) loadCachedCandidate(c *cachedCandidate) error {
	sv, err := s.loadCached(c.Version, c.Digest, c.Signature)
	if err != nil {
		return err
	}
	s.log.Info("holding cached rollout candidate", "version", c.Version, "percent", c.Percent, "shadow", c.Shadow)
	return s.slot.SetCandidate(&Candidate{Serving: sv, Percent: c.Percent, ShadowRate: c.Shadow})
}

// loadCached loads a version from the cache, within the memory budget.
func (s *Syncer) loadCached(version, digest string, sig *model.Signature) (*Serving, error) {
	path := s.blobPath(digest)
	size := int64(0)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	release, err := s.srv.reserve(s.cfg.Model, version, size)
	if err != nil {
		s.slot.Refused(version, err)
		return nil, fmt.Errorf("cached version %s cannot be held: %w", version, err)
	}
	defer release()
	sv, err := s.load(path, version, digest, sig)
	if err != nil {
		return nil, fmt.Errorf("cached version %s is unusable: %w", version, err)
	}
	sv.Source = "cache"
	return sv, nil
}

// load verifies an artifact file (digest, signature, structure) and
// returns it ready to serve. The digest and the signature are checked
// before anything in the file is parsed.
func (s *Syncer) load(path, version, digest string, sig *model.Signature) (*Serving, error) {
	start := time.Now()
	data, err := model.ReadFileLimited(path, MaxArtifactBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRejected, err)
	}
	if got := model.Digest(data); got != digest {
		return nil, fmt.Errorf("%w: artifact hashes to %s, registry says %s", errRejected, got, digest)
	}
	if err := s.checkSignature(sig, digest); err != nil {
		return nil, err
	}
	p, err := s.cfg.ONNX.Predictor(data, digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRejected, err)
	}
	modelLoadTime.Update(time.Since(start).Seconds())
	return &Serving{Predictor: p, Name: s.cfg.Model, Version: version, Digest: digest, Source: "registry", LoadedAt: time.Now(),
		Bytes: int64(len(data))}, nil
}

func (s *Syncer) checkSignature(sig *model.Signature, digest string) error {
	if len(s.cfg.TrustedKeys) == 0 {
		if s.cfg.RequireSignature {
			return fmt.Errorf("%w: signatures required but no trusted key configured", errRejected)
		}
		return nil
	}
	if sig == nil {
		if s.cfg.RequireSignature {
			return fmt.Errorf("%w: version is not signed", errRejected)
		}
		return nil
	}
	if _, err := model.Verify(*sig, digest, s.cfg.TrustedKeys); err != nil {
		return fmt.Errorf("%w: %v", errRejected, err)
	}
	return nil
}

// Run follows the channel until ctx is done.
func (s *Syncer) Run(ctx context.Context) { s.watcher.Run(ctx, s.apply) }

// apply makes the server serve res's version and hold its candidate,
// fetching them if needed.
func (s *Syncer) apply(ctx context.Context, res wire.Resolution) error {
	if err := s.applyStable(ctx, res); err != nil {
		return err
	}
	if err := s.applyCandidate(ctx, res.Candidate); err != nil {
		return err
	}
	if err := s.writePointer(res); err != nil {
		s.log.Warn("cannot record the model in the cache", "err", err)
	}
	return nil
}

// applyCandidate puts the region's rollout candidate beside the serving
// model (verified like it), updates its share, or removes it. A rejected
// candidate is not held: the stable version answers everything.
func (s *Syncer) applyCandidate(ctx context.Context, rc *wire.ResolvedCandidate) error {
	held := s.slot.Candidate()
	if rc == nil {
		if held != nil {
			s.slot.SetCandidate(nil)
			s.log.Info("rollout candidate removed", "version", held.Serving.Version)
		}
		return nil
	}
	v := rc.Version
	var sv *Serving
	if held != nil && held.Serving.Digest == v.Digest && held.Serving.Version == v.Version {
		sv = held.Serving
	} else {
		if err := s.rejected[v.Digest]; err != nil {
			return nil
		}
		var release func()
		var err error
		if sv, release, err = s.fetch(ctx, v); err != nil {
			if errors.Is(err, errRejected) {
				modelLoadsBad.Inc()
				s.rejected[v.Digest] = err
				s.log.Error("rejected rollout candidate; the serving version answers everything", "version", v.Version, "err", err)
				s.refuse(v.Version, err)
				return nil
			}
			return err
		}
		defer release()
		modelLoadsOK.Inc()
	}
	if err := s.slot.SetCandidate(&Candidate{Serving: sv, Percent: rc.Percent, ShadowRate: rc.Shadow}); err != nil {
		return fmt.Errorf("%w: %v", errRejected, err)
	}
	if held == nil || held.Serving != sv || held.Percent != rc.Percent || held.ShadowRate != rc.Shadow {
		s.log.Info("rollout candidate set", "version", v.Version, "percent", rc.Percent, "shadow", rc.Shadow)
	}
	return nil
}

// applyStable makes the server serve res's version, fetching it if needed.
func (s *Syncer) applyStable(ctx context.Context, res wire.Resolution) error {
	v := res.Version
	cur := s.slot.Current()
	if cur != nil && cur.Digest == v.Digest {
		if cur.Version != v.Version { // same bytes under a new name
			// The same predictor, prepared afresh: its answers, series and
			// statistics carry the new name.
			next := &Serving{Predictor: cur.Predictor, Name: cur.Name, Version: v.Version, Digest: cur.Digest, Source: cur.Source,
				LoadedAt: cur.LoadedAt, Bytes: cur.Bytes}
			s.slot.Swap(next)
			s.notify(next)
		}
		return nil
	}
	if err := s.rejected[v.Digest]; err != nil {
		return err
	}
	start := time.Now()
	sv, release, err := s.fetch(ctx, v)
	if err != nil {
		if errors.Is(err, errRejected) {
			modelLoadsBad.Inc()
			s.rejected[v.Digest] = err
			s.log.Error("rejected model version; the previous one keeps serving", "version", v.Version, "digest", v.Digest, "err", err)
			s.refuse(v.Version, err)
		}
		return err
	}
	defer release()
	modelLoadsOK.Inc()
	old := s.slot.Swap(sv)
	oldVersion := ""
	if old != nil {
		oldVersion = old.Version
	}
	s.log.Info("swapped model", "from", oldVersion, "to", sv.Version, "digest", sv.Digest, "revision", res.Revision,
		"took_ms", time.Since(start).Milliseconds())
	s.notify(sv)
	var keep []string
	if res.Candidate != nil {
		keep = append(keep, res.Candidate.Version.Digest)
	}
	s.srv.prune(s.cfg.CacheDir, keep...)
	s.advertise()
	return nil
}

// refuse records a version this model's syncer will not serve: readiness
// and the edge's Consul meta say it.
func (s *Syncer) refuse(version string, err error) {
	s.slot.Refused(version, err)
	if s.cfg.OnReject != nil {
		s.cfg.OnReject(version, err)
	}
}

func (s *Syncer) notify(sv *Serving) {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(sv)
	}
}

// fetch downloads a version into the cache (unless already there) and
// verifies it, within the memory budget: the version's size is reserved
// before a byte is fetched, and release gives it back once the version is
// held (or on an error).
func (s *Syncer) fetch(ctx context.Context, v wire.Version) (sv *Serving, release func(), err error) {
	if _, err := model.ParseDigest(v.Digest); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errRejected, err)
	}
	if release, err = s.srv.reserve(s.cfg.Model, v.Version, v.Size); err != nil {
		s.log.Error("refused a version over the memory budget; will try again", "version", v.Version, "err", err)
		s.refuse(v.Version, err)
		return nil, nil, err
	}
	s.slot.loading.Store(&Loading{Version: v.Version, Since: time.Now().UTC()})
	defer s.slot.loading.Store(nil)
	defer s.srv.cache.fetch(v.Digest)()
	path := s.blobPath(v.Digest)
	if _, err := os.Stat(path); err != nil {
		if err := s.download(ctx, v.Digest, path); err != nil {
			release()
			return nil, nil, err
		}
	}
	if sv, err = s.load(path, v.Version, v.Digest, v.Signature); err != nil {
		release()
		os.Remove(path) // never keep (or offer peers) a bad artifact
		s.advertise()
		return nil, nil, err
	}
	return sv, release, nil
}

// download fetches an artifact into the cache: from a same-region peer or
// the registry, continuing a cut download, committed only once its bytes
// hash to digest.
func (s *Syncer) download(ctx context.Context, digest, path string) error {
	t := &distrib.File{Path: path}
	defer t.Close()
	res, err := s.cfg.Fetcher.Fetch(ctx, digest, t)
	if errors.Is(err, distrib.ErrDigest) {
		t.Reset()
		return fmt.Errorf("%w: %v", errRejected, err)
	}
	if err != nil {
		return fmt.Errorf("cannot download %s: %w", digest, err)
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("cannot keep %s: %w", digest, err)
	}
	s.log.Info("artifact downloaded", "digest", digest, "from_peers", res.Bytes["peer"], "from_registry", res.Bytes["registry"],
		"resumed", res.Resumed, "peers_refused", res.Refused)
	s.advertise()
	return nil
}

// advertise reports the verified artifacts in the cache.
func (s *Syncer) advertise() {
	if s.cfg.OnArtifacts == nil {
		return
	}
	entries, _ := os.ReadDir(filepath.Join(s.cfg.CacheDir, "blobs"))
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	s.cfg.OnArtifacts(distrib.Digests(names, ".sapm"))
}

func (s *Syncer) writePointer(res wire.Resolution) error {
	ptr := cachePointer{Model: s.cfg.Model, Channel: s.cfg.Channel, Region: s.cfg.Region, Version: res.Version.Version,
		Digest: res.Version.Digest, Revision: res.Revision, Signature: res.Version.Signature}
	if c, rc := s.slot.Candidate(), res.Candidate; c != nil && rc != nil && c.Serving.Digest == rc.Version.Digest {
		ptr.Candidate = &cachedCandidate{Version: rc.Version.Version, Digest: rc.Version.Digest, Signature: rc.Version.Signature,
			Percent: rc.Percent, Shadow: rc.Shadow}
	}
	data, err := json.MarshalIndent(ptr, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.pointerPath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.pointerPath())
}
