// Package distrib moves model artifacts to the edges of a region without
// the central registry paying for every edge: one edge per region (its
// seeder, chosen by rendezvous hashing over the region's blob servers in
// Consul) fetches a new artifact from the registry, and the others fetch it
// from a same-region peer that already holds it verified. Downloads resume
// with Range from where they were cut, every byte is checked against the
// artifact's digest before anything may load it, and a peer whose bytes do
// not match is not asked again. docs/CAPACITY.md says why and what it
// costs.
package distrib

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sentimentpro/sentiment/internal/backoff"
	"github.com/sentimentpro/sentiment/registry/regclient"
)

// Source is one place an artifact can be read from: the registry or a
// peer.
type Source interface {
	// Name says which, for logs: "registry" or "peer <addr>".
	Name() string
	// Kind is "registry" or "peer", the metrics' label.
	Kind() string
	// Open reads the artifact from byte offset on and returns its whole
	// size (-1 when unknown). A source at its limit answers a
	// *regclient.APIError with status 503 and its RetryAfter.
	Open(ctx context.Context, digest string, offset int64) (io.ReadCloser, int64, error)
}

// Holders is what a Finder knows about one artifact in this region.
type Holders struct {
	// Peers hold the artifact verified and serve it.
	Peers []Source
	// Seed says this instance fetches the artifact from the registry
	// itself: it is the region's seeder for it, or no peer could ever hold
	// it.
	Seed bool
	// Sources counts the region's blob servers: the jitter's scale.
	Sources int
	// Index is passed back to Find to wait until something changes.
	Index uint64
}

// Finder finds the same-region peers of an artifact. With index > 0 Find
// blocks until the region's peers change or wait passes.
type Finder interface {
	Find(ctx context.Context, digest string, index uint64, wait time.Duration) (Holders, error)
}

// Target is where a download's bytes go.
type Target interface {
	io.Writer
	// Held returns what an earlier, cut download left (nil when nothing),
	// to be hashed and continued.
	Held() (io.ReadCloser, error)
	// Reset drops everything written.
	Reset() error
}

// ErrDigest marks an artifact whose bytes, from the registry itself, do
// not hash to its digest: refetching will not help.
var ErrDigest = errors.New("artifact does not match its digest")

// Fetcher downloads artifacts from peers or the registry.
type Fetcher struct {
	Registry Source
	// Finder finds same-region peers; nil fetches from the registry only.
	Finder Finder
	// PeerWait bounds how long a fetch waits for some peer of the region
	// to hold an artifact before it goes to the registry itself (default
	// 2m), also while Consul cannot be reached. While any peer holds it,
	// the fetch waits for a free upload slot instead.
	PeerWait time.Duration
	// Spread is the jitter per blob server of the region before a fetch
	// that is not the seeder's starts (default 5ms, at most MaxSpread):
	// a promote's wake-up is spread over the fleet.
	Spread, MaxSpread time.Duration
	// Stall drops a source that sends nothing for this long (default 20s);
	// the download resumes from another.
	Stall time.Duration
	// Attempts bounds the failures (not busy answers) of one fetch
	// (default 10).
	Attempts int
	// MaxBytes refuses a larger artifact (default: no limit).
	MaxBytes int64
	Log      *slog.Logger
}

// Result says how a fetch went.
type Result struct {
	Bytes   map[string]int64 // received, by source kind
	Resumed int              // how often it continued a cut download (here or before a restart)
	Refused int              // peers whose bytes did not match
}

func (f *Fetcher) defaults() {
	if f.PeerWait <= 0 {
		f.PeerWait = 2 * time.Minute
	}
	if f.Spread <= 0 {
		f.Spread = 5 * time.Millisecond
	}
	if f.MaxSpread <= 0 {
		f.MaxSpread = 5 * time.Second
	}
	if f.Stall <= 0 {
		f.Stall = 20 * time.Second
	}
	if f.Attempts <= 0 {
		f.Attempts = 10
	}
	if f.Log == nil {
		f.Log = slog.Default()
	}
}

// download is one fetch in progress.
type download struct {
	f       *Fetcher
	digest  string
	t       Target
	h       hash.Hash
	off     int64
	from    map[string]Source // sources that wrote some of what t holds
	banned  map[string]bool   // peers that failed or lied: not asked again
	busy    map[string]time.Time
	index   uint64
	started time.Time
	// registryOnly after a mismatch: the mixed bytes cannot tell which
	// peer lied, so the next try comes from the registry alone.
	registryOnly bool
	jittered     bool
	res          Result
}

// Fetch writes the artifact with digest into t, continuing what t already
// holds, and returns when all of it is there and hashes to digest. A
// mismatch from peers is retried from the registry; one from the registry
// is ErrDigest.
func (f *Fetcher) Fetch(ctx context.Context, digest string, t Target) (Result, error) {
	f.defaults()
	d := &download{f: f, digest: digest, t: t, h: sha256.New(), from: map[string]Source{}, banned: map[string]bool{},
		busy: map[string]time.Time{}, started: time.Now(), res: Result{Bytes: map[string]int64{}}}
	if err := d.resume(); err != nil {
		f.Log.Warn("cannot continue a cut download; starting again", "digest", digest, "err", err)
		if err := d.reset(); err != nil {
			return d.res, err
		}
	}
	fails := backoff.Backoff{First: 200 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for {
		src, err := d.pick(ctx)
		if err != nil {
			return d.res, err
		}
		done, err := d.copyFrom(ctx, src)
		if done {
			ok, err := d.check(src)
			if ok || err != nil {
				return d.res, err
			}
			continue // a peer lied: from the registry now
		}
		if ctx.Err() != nil {
			return d.res, ctx.Err()
		}
		if wait, busy := busyFor(err); busy {
			fetchBusy(src.Kind()).Inc()
			if src.Kind() == "peer" {
				d.busy[src.Name()] = time.Now().Add(wait)
				continue
			}
			f.Log.Info("registry busy; waiting as it asks", "digest", digest, "retry_after", wait)
			backoff.Sleep(ctx, wait+jitter(wait/4))
			continue
		}
		fetchFailures(src.Kind()).Inc()
		if failures++; failures >= f.Attempts {
			return d.res, fmt.Errorf("cannot download %s after %d attempts: %w", digest, failures, err)
		}
		f.Log.Warn("artifact download failed; continuing from another try", "digest", digest, "source", src.Name(),
			"at_byte", d.off, "err", err)
		if src.Kind() == "peer" {
			d.banned[src.Name()] = true
			continue
		}
		backoff.Sleep(ctx, fails.Next())
	}
}

// resume hashes what t holds from an earlier download.
func (d *download) resume() error {
	held, err := d.t.Held()
	if err != nil || held == nil {
		return err
	}
	defer held.Close()
	n, err := io.Copy(d.h, held)
	d.off = n
	if n > 0 {
		// Bytes of unknown origin: if they turn out wrong, only the
		// registry is asked again.
		d.from["earlier download"] = nil
	}
	return err
}

func (d *download) reset() error {
	d.h.Reset()
	d.off = 0
	clear(d.from)
	return d.t.Reset()
}

// pick chooses where the next bytes come from: a free peer holding the
// artifact, else the registry if this instance is the seeder, nobody can
// hold it, or nobody did within PeerWait; else it waits for a change.
func (d *download) pick(ctx context.Context) (Source, error) {
	f := d.f
	if f.Finder == nil || d.registryOnly {
		return f.Registry, nil
	}
	// The first look is at once (the peers may have changed since the last
	// pick, e.g. one was busy); later ones wait for a change.
	d.index = 0
	for {
		wait := time.Until(d.started.Add(f.PeerWait))
		hs, err := f.Finder.Find(ctx, d.digest, d.index, max(wait, time.Second))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			// Consul unreachable: look again shortly rather than send a
			// whole fleet to the registry at once; after PeerWait, go.
			if wait <= 0 {
				peerFallbacks.Inc()
				f.Log.Warn("cannot look for peers; fetching from the registry", "digest", d.digest, "err", err)
				return f.Registry, nil
			}
			f.Log.Warn("cannot look for peers; looking again", "digest", d.digest, "err", err)
			backoff.Sleep(ctx, min(time.Second+jitter(time.Second), wait))
			d.index = 0
			continue
		}
		d.index = hs.Index
		if !d.jittered && !hs.Seed {
			d.jittered = true
			backoff.Sleep(ctx, jitter(min(time.Duration(hs.Sources)*f.Spread, f.MaxSpread)))
			d.index = 0 // look again at once
			continue
		}
		free, soonest := d.free(hs.Peers)
		switch {
		case len(free) > 0:
			return free[rand.IntN(len(free))], nil
		case hs.Seed:
			return f.Registry, nil
		case len(hs.Peers) > 0 && soonest.IsZero():
			// Every holder failed or lied to this fetch: waiting for
			// another would be waiting for the same ones.
			peerFallbacks.Inc()
			f.Log.Warn("every peer holding the artifact failed; fetching from the registry", "digest", d.digest)
			return f.Registry, nil
		case soonest.IsZero() && wait <= 0:
			peerFallbacks.Inc()
			f.Log.Warn("no peer of the region holds the artifact; fetching from the registry", "digest", d.digest,
				"waited", f.PeerWait)
			return f.Registry, nil
		case !soonest.IsZero():
			backoff.Sleep(ctx, time.Until(soonest)+jitter(250*time.Millisecond))
			d.index = 0
		}
	}
}

// free returns the holders neither banned nor busy, and when the first
// busy one frees up (zero when none is busy).
func (d *download) free(peers []Source) ([]Source, time.Time) {
	var free []Source
	var soonest time.Time
	now := time.Now()
	for _, p := range peers {
		switch until, busy := d.busy[p.Name()]; {
		case d.banned[p.Name()]:
		case busy && until.After(now):
			if soonest.IsZero() || until.Before(soonest) {
				soonest = until
			}
		default:
			free = append(free, p)
		}
	}
	return free, soonest
}

// copyFrom appends src's bytes from d.off on; done says the source
// reached the end of the artifact.
func (d *download) copyFrom(ctx context.Context, src Source) (done bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, size, err := src.Open(ctx, d.digest, d.off)
	if regclient.IsStatus(err, http.StatusRequestedRangeNotSatisfiable) && d.off > 0 {
		return true, nil // it holds all of it already; the digest decides
	}
	if err != nil {
		return false, err
	}
	defer body.Close()
	if max := d.f.MaxBytes; max > 0 && size > max {
		return false, fmt.Errorf("%s says the artifact has %d bytes, more than the %d allowed", src.Name(), size, max)
	}
	if d.off > 0 {
		d.res.Resumed++
		fetchResumes(src.Kind()).Inc()
	}
	want, limit := int64(-1), int64(-1)
	switch {
	case size >= 0:
		want = size - d.off
	case d.f.MaxBytes > 0:
		limit = d.f.MaxBytes - d.off // a source that does not say the size is held to the largest allowed
	}
	n, err := copyWatched(io.MultiWriter(d.t, d.h), body, want, limit, d.f.Stall, cancel)
	d.off += n
	d.res.Bytes[src.Kind()] += n
	fetchBytes(src.Kind()).Add(int(n))
	if n > 0 {
		d.from[src.Name()] = src
	}
	return err == nil, err
}

// check compares the hash with the digest after a complete download. On
// a mismatch from peers it bans them, drops the bytes and asks for the
// registry next (ok false, no error).
func (d *download) check(last Source) (bool, error) {
	if got := "sha256:" + hex.EncodeToString(d.h.Sum(nil)); got == d.digest {
		fetchesDone.Inc()
		return true, nil
	}
	fetchMismatches(last.Kind()).Inc()
	var peers []string
	for name, src := range d.from {
		if src != nil && src.Kind() == "peer" {
			d.banned[name] = true
			peers = append(peers, name)
		}
	}
	if err := d.reset(); err != nil {
		return false, err
	}
	if len(peers) == 0 && d.registryOnly {
		return false, fmt.Errorf("%w: %s, from the registry", ErrDigest, d.digest)
	}
	d.res.Refused += len(peers)
	d.f.Log.Warn("downloaded bytes do not match the digest; fetching from the registry", "digest", d.digest, "refused_peers", peers)
	d.registryOnly = true
	return false, nil
}

// copyWatched copies until EOF, or want bytes when want >= 0 (more is an
// error), at most limit bytes when limit >= 0, calling stop when the
// source sends nothing for stall.
func copyWatched(w io.Writer, r io.Reader, want, limit int64, stall time.Duration, stop func()) (int64, error) {
	timer := time.AfterFunc(stall, stop)
	defer timer.Stop()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		timer.Reset(stall)
		if m > 0 {
			if want >= 0 && n+int64(m) > want {
				return n, fmt.Errorf("source sent more than the %d bytes it announced", want)
			}
			if limit >= 0 && n+int64(m) > limit {
				return n, fmt.Errorf("source sent more than the %d bytes an artifact may have", limit)
			}
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, fmt.Errorf("cannot write the artifact: %w", werr)
			}
			n += int64(m)
		}
		switch {
		case err == io.EOF && (want < 0 || n == want):
			return n, nil
		case err == io.EOF:
			return n, fmt.Errorf("cut after %d of %d bytes: %w", n, want, io.ErrUnexpectedEOF)
		case err != nil:
			return n, fmt.Errorf("cut after %d bytes: %w", n, err)
		}
	}
}

// busyFor reports a source's "come back later" and how much later.
func busyFor(err error) (time.Duration, bool) {
	var ae *regclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable && ae.Status != http.StatusTooManyRequests {
		return 0, false
	}
	return max(ae.RetryAfter, time.Second), true
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
