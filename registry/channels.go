package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

func channelKey(model, channel string) string { return "channels/" + model + "/" + channel }
func channelIndexKey(model, channel string) string {
	return "index/channels/" + model + "/" + channel
}

func validateChannel(model, channel string) error {
	if err := wire.ValidateName("model", model); err != nil {
		return err
	}
	return wire.ValidateName("channel", channel)
}

func decodeChannel(doc store.Doc) (wire.Channel, error) {
	var c wire.Channel
	if err := json.Unmarshal(doc.Data, &c); err != nil {
		return wire.Channel{}, fmt.Errorf("cannot decode channel %s revision %d: %w", doc.Key, doc.Rev, err)
	}
	c.Revision = doc.Rev
	return c, nil
}

// GetChannel returns the channel's current revision.
func (r *Registry) GetChannel(ctx context.Context, model, channel string) (wire.Channel, error) {
	if err := validateChannel(model, channel); err != nil {
		return wire.Channel{}, err
	}
	doc, err := store.ReadDoc(ctx, r.store, channelKey(model, channel))
	if err != nil {
		return wire.Channel{}, StoreErr(fmt.Sprintf("channel %s/%s", model, channel), err)
	}
	return decodeChannel(doc)
}

// ChannelHistory returns up to limit revisions, newest first.
func (r *Registry) ChannelHistory(ctx context.Context, model, channel string, limit int) ([]wire.Channel, error) {
	if err := validateChannel(model, channel); err != nil {
		return nil, err
	}
	docs, err := store.DocHistory(ctx, r.store, channelKey(model, channel), limit)
	if err != nil {
		return nil, StoreErr("cannot read channel history", err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("channel %s/%s: %w", model, channel, ErrNotFound)
	}
	out := make([]wire.Channel, 0, len(docs))
	for _, d := range docs {
		c, err := decodeChannel(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ListChannels returns every channel of a model at its current revision.
func (r *Registry) ListChannels(ctx context.Context, model string) ([]wire.Channel, error) {
	if err := wire.ValidateName("model", model); err != nil {
		return nil, err
	}
	prefix := "index/channels/" + model + "/"
	infos, err := r.store.List(ctx, prefix, "", 0)
	if err != nil {
		return nil, StoreErr("cannot list channels", err)
	}
	out := make([]wire.Channel, 0, len(infos))
	for _, info := range infos {
		c, err := r.GetChannel(ctx, model, strings.TrimPrefix(info.Key, prefix))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// UpdateChannel moves a channel by compare-and-swap. update receives the
// current revision (Revision 0 if the channel does not exist yet) and
// returns the next state, or an error to refuse the move; it may be called
// several times when other writers move the channel concurrently. With
// expect set, the move happens only from that revision (ErrConflict
// otherwise). Every target the new state introduces must be an existing
// version.
func (r *Registry) UpdateChannel(ctx context.Context, model, channel string, expect *uint64, update func(cur wire.Channel) (wire.Channel, error)) (wire.Channel, error) {
	if err := validateChannel(model, channel); err != nil {
		return wire.Channel{}, err
	}
	key := channelKey(model, channel)
	mu, _ := r.chanLock.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	var next wire.Channel
	var refused error // the update's own error, returned as it is
	doc, err := store.UpdateDoc(ctx, r.store, key, func(d store.Doc) ([]byte, error) {
		cur := wire.Channel{Model: model, Channel: channel}
		if d.Rev > 0 {
			if cur, refused = decodeChannel(d); refused != nil {
				return nil, refused
			}
		}
		if expect != nil && cur.Revision != *expect {
			refused = fmt.Errorf("%w: channel %s/%s is at revision %d, not %d", ErrConflict, model, channel, cur.Revision, *expect)
			return nil, refused
		}
		if next, refused = update(cur); refused != nil {
			return nil, refused
		}
		next.Model, next.Channel, next.UpdatedAt = model, channel, r.now().UTC()
		if next.Digests, refused = r.targetDigests(ctx, model, next); refused != nil {
			return nil, refused
		}
		next.Change.Before, next.Change.After = cur.Targets(), next.Targets()
		data, err := json.Marshal(next)
		if err != nil {
			refused = fmt.Errorf("cannot encode channel: %w", err)
		}
		return data, refused
	})
	if refused != nil {
		return wire.Channel{}, refused
	}
	if err != nil {
		return wire.Channel{}, StoreErr("cannot move channel "+model+"/"+channel, err)
	}
	if doc.Rev == 1 {
		if _, err := r.store.Put(ctx, channelIndexKey(model, channel), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
			r.log.Warn("cannot write channel index marker", "model", model, "channel", channel, "err", err)
		}
	}
	next.Revision = doc.Rev
	r.hub.notify(key, doc.Rev)
	return next, nil
}

// targetDigests checks that every target of next is an existing version
// and returns their digests. A digest next already records for a target
// (a rollback restores an earlier revision's) must still be that
// version's: a rollback serves the bytes it names, or nothing.
func (r *Registry) targetDigests(ctx context.Context, model string, next wire.Channel) (map[string]string, error) {
	digests := map[string]string{}
	targets := next.Targets()
	for region, c := range next.Candidates {
		targets["candidate "+region] = c.Version
	}
	for scope, v := range targets {
		if err := wire.ValidateName("version", v); err != nil {
			return nil, err
		}
		if scope != wire.GlobalScope {
			if err := wire.ValidateName("region", strings.TrimPrefix(scope, "candidate ")); err != nil {
				return nil, err
			}
		}
		if _, done := digests[v]; done {
			continue
		}
		ver, err := r.GetVersion(ctx, model, v)
		if err != nil {
			return nil, fmt.Errorf("cannot point %s at %s/%s: %w", scope, model, v, err)
		}
		if want, ok := next.Digests[v]; ok && want != ver.Digest {
			return nil, fmt.Errorf("%w: %s/%s is %s now, not the %s it was", ErrConflict, model, v, ver.Digest, want)
		}
		digests[v] = ver.Digest
	}
	return digests, nil
}

// Resolve returns the version a channel serves in region ("" = global).
func (r *Registry) Resolve(ctx context.Context, model, channel, region string) (wire.Resolution, error) {
	c, err := r.GetChannel(ctx, model, channel)
	if err != nil {
		return wire.Resolution{}, err
	}
	return r.resolution(ctx, c, region)
}

func (r *Registry) resolution(ctx context.Context, c wire.Channel, region string) (wire.Resolution, error) {
	v := c.Resolve(region)
	if v == "" {
		return wire.Resolution{}, fmt.Errorf("channel %s/%s has no target for region %q: %w", c.Model, c.Channel, region, ErrNotFound)
	}
	ver, err := r.GetVersion(ctx, c.Model, v)
	if err != nil {
		return wire.Resolution{}, err
	}
	res := wire.Resolution{Model: c.Model, Channel: c.Channel, Region: region, Revision: c.Revision, Version: ver,
		ChangedAt: c.UpdatedAt.Format(time.RFC3339Nano)}
	if cand, ok := c.Candidates[region]; ok && region != "" {
		cv, err := r.GetVersion(ctx, c.Model, cand.Version)
		if err != nil {
			return wire.Resolution{}, err
		}
		res.Candidate = &wire.ResolvedCandidate{Version: cv, Percent: cand.Percent, Shadow: cand.Shadow}
	}
	return res, nil
}

// waitRevision waits until model/channel's revision exceeds after, or
// wait passes, and returns the newest revision this replica knows of. A
// channel already watched costs no store read.
func (r *Registry) waitRevision(ctx context.Context, model, channel string, after uint64, wait time.Duration) (uint64, error) {
	if err := validateChannel(model, channel); err != nil {
		return 0, err
	}
	key := channelKey(model, channel)
	if !r.hub.watched(key) {
		// Only channels that exist are watched: a made-up name gets 404
		// at once instead of a poller of its own.
		if _, err := r.GetChannel(ctx, model, channel); err != nil {
			return 0, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return r.hub.wait(wctx, key, after), nil
}

// WaitChannel blocks until the channel's revision is greater than after, or
// wait passes, and returns the current revision: Consul-style blocking
// queries (?index=N&wait=30s). after=0 returns at once.
func (r *Registry) WaitChannel(ctx context.Context, model, channel string, after uint64, wait time.Duration) (wire.Channel, error) {
	if err := validateChannel(model, channel); err != nil {
		return wire.Channel{}, err
	}
	if after > 0 && wait > 0 {
		if _, err := r.waitRevision(ctx, model, channel, after, wait); err != nil {
			return wire.Channel{}, err
		}
	}
	return r.GetChannel(ctx, model, channel)
}
