package registry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

func blobKey(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// verifyingReader passes the upload through to the store while hashing and
// validating it. At EOF it returns an error instead if the bytes are not
// the declared digest or not a valid artifact, which makes the store abort
// the upload: nothing unverified ever becomes visible.
type verifyingReader struct {
	r        io.Reader
	limit    int64
	n        int64
	sum      hash.Hash
	verifier *artifactVerifier
	want     string
	meta     model.Metadata
	err      error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.n += int64(n)
		if v.n > v.limit {
			v.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, v.limit)
			return 0, v.err
		}
		v.sum.Write(p[:n])
		if _, werr := v.verifier.Write(p[:n]); werr != nil {
			v.err = fmt.Errorf("%w: %v", ErrBadArtifact, werr)
			return 0, v.err
		}
	}
	if err == io.EOF {
		if got := "sha256:" + hex.EncodeToString(v.sum.Sum(nil)); got != v.want {
			v.err = fmt.Errorf("%w: received %s, declared %s", ErrDigest, got, v.want)
			return n, v.err
		}
		md, verr := v.verifier.Close()
		if verr != nil {
			v.err = fmt.Errorf("%w: %v", ErrBadArtifact, verr)
			return n, v.err
		}
		v.meta = md
	}
	return n, err
}

// PutBlob streams an artifact into the store under its digest. The bytes
// are hashed and validated on the way; a mismatch, an invalid artifact, an
// oversize body or a cut-off stream aborts the upload. Uploading a blob that
// already exists verifies the bytes and succeeds without writing
// (created=false).
func (r *Registry) PutBlob(ctx context.Context, digest string, body io.Reader, size int64) (blob wire.Blob, created bool, err error) {
	if _, err := model.ParseDigest(digest); err != nil {
		return wire.Blob{}, false, fmt.Errorf("%w: %v", wire.ErrInvalid, err)
	}
	if size > r.cfg.MaxArtifactBytes {
		return wire.Blob{}, false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, r.cfg.MaxArtifactBytes)
	}
	vr := &verifyingReader{r: body, limit: r.cfg.MaxArtifactBytes, sum: sha256.New(), verifier: newArtifactVerifier(r.cfg.MaxArtifactBytes), want: digest}
	key := blobKey(digest)
	if info, err := r.store.Stat(ctx, key); err == nil {
		// Already stored (and verified when it was): check the client's
		// bytes anyway so a bad upload is reported, then store nothing.
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return wire.Blob{}, false, err
		}
		return wire.Blob{Digest: digest, Size: info.Size}, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return wire.Blob{}, false, StoreErr("cannot check blob", err)
	}
	info, err := r.store.Put(ctx, key, vr, size)
	switch {
	case vr.err != nil:
		return wire.Blob{}, false, vr.err
	case errors.Is(err, store.ErrExists):
		return wire.Blob{Digest: digest, Size: vr.n}, false, nil // a concurrent upload of the same bytes won
	case err != nil:
		return wire.Blob{}, false, StoreErr("cannot store blob", err)
	}
	return wire.Blob{Digest: digest, Size: info.Size}, true, nil
}

// OpenBlob opens a byte range of an artifact.
func (r *Registry) OpenBlob(ctx context.Context, digest string, offset, length int64) (io.ReadCloser, store.Info, error) {
	if _, err := model.ParseDigest(digest); err != nil {
		return nil, store.Info{}, fmt.Errorf("%w: %v", wire.ErrInvalid, err)
	}
	rc, info, err := r.store.Open(ctx, blobKey(digest), offset, length)
	if err != nil {
		return nil, store.Info{}, StoreErr("cannot open blob "+digest, err)
	}
	return rc, info, nil
}

// StatBlob returns the size of a stored artifact.
func (r *Registry) StatBlob(ctx context.Context, digest string) (store.Info, error) {
	if _, err := model.ParseDigest(digest); err != nil {
		return store.Info{}, fmt.Errorf("%w: %v", wire.ErrInvalid, err)
	}
	info, err := r.store.Stat(ctx, blobKey(digest))
	if err != nil {
		return store.Info{}, StoreErr("cannot find blob "+digest, err)
	}
	return info, nil
}

// blobHeader is what an artifact is: the built-in format's JSON header,
// read with two ranged reads, or an ONNX bundle's description, read by
// streaming the bundle through its checks again.
func (r *Registry) blobHeader(ctx context.Context, digest string) (model.Metadata, error) {
	info, err := r.StatBlob(ctx, digest)
	if err != nil {
		return model.Metadata{}, err
	}
	prefix, err := r.readRange(ctx, digest, 0, min(sniffBytes, info.Size))
	if err != nil {
		return model.Metadata{}, err
	}
	if bundle.Sniff(prefix) {
		return r.bundleHeader(ctx, digest)
	}
	if len(prefix) < 12 {
		return model.Metadata{}, fmt.Errorf("%w: %d bytes", ErrBadArtifact, len(prefix))
	}
	hlen := int64(binary.LittleEndian.Uint32(prefix[8:]))
	if hlen <= 0 || hlen > model.MaxHeaderSize {
		return model.Metadata{}, fmt.Errorf("%w: header length %d", ErrBadArtifact, hlen)
	}
	header, err := r.readRange(ctx, digest, 12, hlen)
	if err != nil {
		return model.Metadata{}, err
	}
	v := model.NewVerifier()
	v.Write(prefix[:12])
	if _, err := v.Write(header); err != nil {
		return model.Metadata{}, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	return v.Header()
}

func (r *Registry) bundleHeader(ctx context.Context, digest string) (model.Metadata, error) {
	rc, _, err := r.OpenBlob(ctx, digest, 0, -1)
	if err != nil {
		return model.Metadata{}, err
	}
	defer rc.Close()
	info, err := bundle.Inspect(rc, r.cfg.MaxArtifactBytes)
	if err != nil {
		return model.Metadata{}, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	return model.BundleMetadata(info), nil
}

func (r *Registry) readRange(ctx context.Context, digest string, off, n int64) ([]byte, error) {
	rc, _, err := r.OpenBlob(ctx, digest, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, StoreErr("cannot read blob "+digest, err)
	}
	return buf, nil
}
