package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

func versionKey(name, version string) string { return "models/" + name + "/versions/" + version }

// tombstoneKey marks a deleted version: its name is never used again, so
// a name in a channel's history always means the same bytes.
func tombstoneKey(name, version string) string { return "tombstones/" + name + "/" + version }
func modelIndexKey(name string) string         { return "index/models/" + name }

const (
	maxLabels      = 32
	maxLabelLen    = 256
	maxDescription = 4096
)

func validateNewVersion(nv wire.NewVersion) error {
	if _, err := model.ParseDigest(nv.Digest); err != nil {
		return fmt.Errorf("%w: %v", wire.ErrInvalid, err)
	}
	if len(nv.Labels) > maxLabels {
		return fmt.Errorf("%w: %d labels, at most %d", wire.ErrInvalid, len(nv.Labels), maxLabels)
	}
	for k, v := range nv.Labels {
		if k == "" || len(k) > 64 || len(v) > maxLabelLen {
			return fmt.Errorf("%w: label %q: keys 1-64 bytes, values up to %d", wire.ErrInvalid, k, maxLabelLen)
		}
	}
	if len(nv.Description) > maxDescription {
		return fmt.Errorf("%w: description longer than %d bytes", wire.ErrInvalid, maxDescription)
	}
	return nil
}

// CreateVersion makes name/version point at an uploaded, verified blob.
// Versions are immutable: creating an existing version with the same digest
// returns it (created=false); with another digest it is ErrConflict.
func (r *Registry) CreateVersion(ctx context.Context, name, version, publisher string, nv wire.NewVersion) (wire.Version, bool, error) {
	if err := wire.ValidateName("model", name); err != nil {
		return wire.Version{}, false, err
	}
	if err := wire.ValidateName("version", version); err != nil {
		return wire.Version{}, false, err
	}
	if err := validateNewVersion(nv); err != nil {
		return wire.Version{}, false, err
	}
	if existing, err := r.GetVersion(ctx, name, version); err == nil {
		return r.sameVersion(existing, nv)
	} else if !errors.Is(err, ErrNotFound) {
		return wire.Version{}, false, err
	}
	if err := r.checkNotDeleted(ctx, name, version); err != nil {
		return wire.Version{}, false, err
	}
	info, err := r.StatBlob(ctx, nv.Digest)
	if errors.Is(err, ErrNotFound) {
		return wire.Version{}, false, fmt.Errorf("%w: blob %s has not been uploaded", wire.ErrInvalid, nv.Digest)
	} else if err != nil {
		return wire.Version{}, false, err
	}
	header, err := r.blobHeader(ctx, nv.Digest)
	if err != nil {
		return wire.Version{}, false, err
	}
	v := wire.Version{
		Model: name, Version: version, Digest: nv.Digest, Size: info.Size,
		Signature: nv.Signature, Publisher: publisher, CreatedAt: r.now().UTC(),
		Labels: nv.Labels, Description: nv.Description, Artifact: header,
	}
	if err := r.checkSignature(&v); err != nil {
		return wire.Version{}, false, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return wire.Version{}, false, fmt.Errorf("cannot encode version: %w", err)
	}
	_, err = r.store.Put(ctx, versionKey(name, version), bytes.NewReader(data), int64(len(data)))
	if errors.Is(err, store.ErrExists) {
		// Lost a race with another publish of the same version.
		existing, gerr := r.GetVersion(ctx, name, version)
		if gerr != nil {
			return wire.Version{}, false, gerr
		}
		return r.sameVersion(existing, nv)
	}
	if err != nil {
		return wire.Version{}, false, StoreErr("cannot store version", err)
	}
	// A delete of the same name may have raced this create: the tombstone
	// wins.
	if err := r.checkNotDeleted(ctx, name, version); err != nil {
		if derr := r.store.Delete(ctx, versionKey(name, version)); derr != nil {
			r.log.Error("cannot remove a version created under a deleted name", "model", name, "version", version, "err", derr)
		}
		return wire.Version{}, false, err
	}
	// The index marker lists the model; it exists after the first version.
	if _, err := r.store.Put(ctx, modelIndexKey(name), strings.NewReader(""), 0); err != nil && !errors.Is(err, store.ErrExists) {
		r.log.Warn("cannot write model index marker", "model", name, "err", err)
	}
	return v, true, nil
}

func (r *Registry) sameVersion(existing wire.Version, nv wire.NewVersion) (wire.Version, bool, error) {
	if existing.Digest != nv.Digest {
		return wire.Version{}, false, fmt.Errorf("%w: %s/%s already exists with digest %s; versions are immutable, publish a new version",
			ErrConflict, existing.Model, existing.Version, existing.Digest)
	}
	return existing, false, nil
}

func (r *Registry) checkSignature(v *wire.Version) error {
	if v.Signature == nil {
		if r.cfg.RequireSignatures {
			return fmt.Errorf("%w: this registry requires a signature from a trusted key", ErrUnsigned)
		}
		return nil
	}
	if len(r.cfg.TrustedKeys) == 0 {
		// Nothing to verify against here: keep the signature for the edges,
		// which verify with their own trusted keys, if it is for these bytes.
		if v.Signature.Digest != v.Digest {
			return fmt.Errorf("%w: signature is for %s, not %s", ErrUnsigned, v.Signature.Digest, v.Digest)
		}
		return nil
	}
	id, err := model.Verify(*v.Signature, v.Digest, r.cfg.TrustedKeys)
	if err != nil {
		trusted := make([]string, len(r.cfg.TrustedKeys))
		for i, k := range r.cfg.TrustedKeys {
			trusted[i] = model.KeyID(k)
		}
		return fmt.Errorf("%w: the version is signed by key %s, which is not trusted here (this registry trusts %s): %v",
			ErrUnsigned, v.Signature.KeyID, strings.Join(trusted, ", "), err)
	}
	v.SignedBy = id
	return nil
}

// GetVersion returns a version's metadata.
func (r *Registry) GetVersion(ctx context.Context, name, version string) (wire.Version, error) {
	if err := validateNames(name, version); err != nil {
		return wire.Version{}, err
	}
	data, err := store.ReadAll(ctx, r.store, versionKey(name, version), 1<<20)
	if err != nil {
		return wire.Version{}, StoreErr(fmt.Sprintf("cannot read version %s/%s", name, version), err)
	}
	var v wire.Version
	if err := json.Unmarshal(data, &v); err != nil {
		return wire.Version{}, fmt.Errorf("cannot decode version %s/%s: %w", name, version, err)
	}
	return r.withEdits(ctx, v)
}

// ListVersions returns up to limit versions of a model in name order,
// after the version named by pageToken, and the token of the next page ("" at
// the end).
func (r *Registry) ListVersions(ctx context.Context, name, pageToken string, limit int) ([]wire.Version, string, error) {
	if err := wire.ValidateName("model", name); err != nil {
		return nil, "", err
	}
	if pageToken != "" {
		if err := wire.ValidateName("page_token", pageToken); err != nil {
			return nil, "", err
		}
	}
	limit = clampLimit(limit)
	prefix := "models/" + name + "/versions/"
	after := ""
	if pageToken != "" {
		after = prefix + pageToken
	}
	infos, err := r.store.List(ctx, prefix, after, limit+1)
	if err != nil {
		return nil, "", StoreErr("cannot list versions", err)
	}
	next := ""
	if len(infos) > limit {
		infos = infos[:limit]
		next = strings.TrimPrefix(infos[limit-1].Key, prefix)
	}
	out := make([]wire.Version, 0, len(infos))
	for _, info := range infos {
		v, err := r.GetVersion(ctx, name, strings.TrimPrefix(info.Key, prefix))
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if len(out) == 0 && pageToken == "" {
		if _, err := r.store.Stat(ctx, modelIndexKey(name)); errors.Is(err, store.ErrNotFound) {
			return nil, "", fmt.Errorf("model %q: %w", name, ErrNotFound)
		}
	}
	return out, next, nil
}

// ListModels returns model names in order, paged like ListVersions.
func (r *Registry) ListModels(ctx context.Context, pageToken string, limit int) ([]string, string, error) {
	if pageToken != "" {
		if err := wire.ValidateName("page_token", pageToken); err != nil {
			return nil, "", err
		}
	}
	limit = clampLimit(limit)
	const prefix = "index/models/"
	after := ""
	if pageToken != "" {
		after = prefix + pageToken
	}
	infos, err := r.store.List(ctx, prefix, after, limit+1)
	if err != nil {
		return nil, "", StoreErr("cannot list models", err)
	}
	next := ""
	if len(infos) > limit {
		infos = infos[:limit]
		next = strings.TrimPrefix(infos[limit-1].Key, prefix)
	}
	names := make([]string, 0, len(infos))
	for _, info := range infos {
		names = append(names, strings.TrimPrefix(info.Key, prefix))
	}
	return names, next, nil
}

// DeleteVersion removes a version's metadata; a version that any channel
// points at cannot be deleted. The blob stays: other versions may share it.
func (r *Registry) DeleteVersion(ctx context.Context, name, version string) (wire.Version, error) {
	v, err := r.GetVersion(ctx, name, version)
	if err != nil {
		return wire.Version{}, err
	}
	channels, err := r.ListChannels(ctx, name)
	if err != nil {
		return wire.Version{}, err
	}
	for _, ch := range channels {
		for scope, target := range ch.Targets() {
			if target == version {
				return wire.Version{}, fmt.Errorf("%w: channel %q points at %s for %s; promote another version first", ErrConflict, ch.Channel, version, scope)
			}
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return wire.Version{}, fmt.Errorf("cannot encode tombstone: %w", err)
	}
	if _, err := r.store.Put(ctx, tombstoneKey(name, version), bytes.NewReader(data), int64(len(data))); err != nil && !errors.Is(err, store.ErrExists) {
		return wire.Version{}, StoreErr("cannot write tombstone", err)
	}
	if err := r.store.Delete(ctx, versionKey(name, version)); err != nil {
		return wire.Version{}, StoreErr("cannot delete version", err)
	}
	return v, nil
}

// checkNotDeleted refuses a version name that was deleted before.
func (r *Registry) checkNotDeleted(ctx context.Context, name, version string) error {
	_, err := r.store.Stat(ctx, tombstoneKey(name, version))
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s/%s was deleted; a version name is never reused, publish a new one", ErrConflict, name, version)
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return StoreErr("cannot check for a tombstone", err)
}

func clampLimit(limit int) int {
	if limit <= 0 || limit > 1000 {
		return 100
	}
	return limit
}

// editKey holds the editable part of a version (labels and description)
// as a compare-and-swap document beside its write-once metadata.
// validateNames checks a model's and a version's names, which become
// object keys.
func validateNames(name, version string) error {
	if err := wire.ValidateName("model", name); err != nil {
		return err
	}
	return wire.ValidateName("version", version)
}

func editKey(name, version string) string { return "versionedits/" + name + "/" + version }

// versionMeta is the editable part as stored.
type versionMeta struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Description string            `json:"description"`
	EditedBy    string            `json:"edited_by"`
	EditedAt    time.Time         `json:"edited_at"`
}

// withEdits lays a version's latest edit over its metadata.
func (r *Registry) withEdits(ctx context.Context, v wire.Version) (wire.Version, error) {
	doc, err := store.ReadDoc(ctx, r.store, editKey(v.Model, v.Version))
	if errors.Is(err, store.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return wire.Version{}, StoreErr("cannot read the edits of "+v.Model+"/"+v.Version, err)
	}
	var m versionMeta
	if err := json.Unmarshal(doc.Data, &m); err != nil {
		return wire.Version{}, fmt.Errorf("cannot decode the edits of %s/%s: %w", v.Model, v.Version, err)
	}
	v.Labels, v.Description, v.EditedBy = m.Labels, m.Description, m.EditedBy
	v.EditedAt = &m.EditedAt
	return v, nil
}

// EditVersion applies an edit to a version's labels and description by
// compare-and-swap, and returns the version as edited.
func (r *Registry) EditVersion(ctx context.Context, name, version, actor string, e wire.VersionEdit) (wire.Version, error) {
	if e.Labels == nil && e.Description == nil {
		return wire.Version{}, fmt.Errorf("%w: an edit sets labels or a description", wire.ErrInvalid)
	}
	// The names first: they become the edit document's key.
	if err := validateNames(name, version); err != nil {
		return wire.Version{}, err
	}
	var refused error // decide's own error, returned as it is
	_, err := store.UpdateDoc(ctx, r.store, editKey(name, version), func(store.Doc) ([]byte, error) {
		// The version as last edited; a concurrent edit makes the write
		// conflict, and this edit is applied to that one.
		v, err := r.GetVersion(ctx, name, version)
		if err != nil {
			refused = err
			return nil, err
		}
		m := versionMeta{Labels: maps.Clone(v.Labels), Description: v.Description, EditedBy: actor, EditedAt: r.now().UTC()}
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		for k, val := range e.Labels {
			if val == nil {
				delete(m.Labels, k)
			} else {
				m.Labels[k] = *val
			}
		}
		if e.Description != nil {
			m.Description = *e.Description
		}
		if refused = validateNewVersion(wire.NewVersion{Digest: v.Digest, Labels: m.Labels, Description: m.Description}); refused != nil {
			return nil, refused
		}
		return json.Marshal(m)
	})
	if refused != nil {
		return wire.Version{}, refused
	}
	if err != nil {
		return wire.Version{}, StoreErr("cannot edit "+name+"/"+version, err)
	}
	return r.GetVersion(ctx, name, version)
}
