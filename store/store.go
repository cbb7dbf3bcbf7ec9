// Package store holds the registry's storage interface (edges never touch
// the bucket: they read through the registry's API):
// immutable, write-once objects (model artifacts, audit entries, version
// metadata) and small JSON documents with compare-and-swap (channel pointers).
//
// Two implementations live in subpackages: store/s3 (any S3-compatible server,
// through minio-go) and store/dir (a local directory, the embedded default of
// `make run`). Both pass the same conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var (
	// ErrNotFound is returned when an object or document does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned by Put when the key is already taken: objects are
	// write-once.
	ErrExists = errors.New("already exists")
	// ErrConflict is returned by WriteDoc when the document moved on since the
	// revision the caller read.
	ErrConflict = errors.New("revision conflict")
	// ErrInvalidKey is returned for keys that are empty, too long, or contain
	// characters or segments outside the allowed set.
	ErrInvalidKey = errors.New("invalid key")
	// ErrTooLarge is returned by ReadAll for an object over its limit.
	ErrTooLarge = errors.New("object too large")
)

// MaxKeyLen bounds object keys; S3 allows 1024 bytes.
const MaxKeyLen = 512

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is a flat namespace of write-once objects.
//
// Keys are slash-separated paths of segments made of [A-Za-z0-9._-]; a
// segment may not be "." or "..". Implementations must make Put atomic:
// a reader sees either nothing or the whole object, and an interrupted Put
// leaves nothing visible under the key.
type Store interface {
	// Put streams r into a new object. size is the exact length or -1 when
	// unknown. It returns ErrExists if the key is taken.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// Open reads length bytes of the object starting at offset; a negative
	// length reads to the end.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error)
	// Stat returns the object's Info or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose key starts with prefix and sorts after
	// startAfter, in ascending byte order of their keys: at most limit of
	// them, or all when limit <= 0.
	List(ctx context.Context, prefix, startAfter string, limit int) ([]Info, error)
}

// ValidateKey checks that key is a well-formed object key.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d outside 1..%d", ErrInvalidKey, len(key), MaxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has an empty, \".\" or \"..\" segment", ErrInvalidKey, key)
		}
		for i := 0; i < len(seg); i++ {
			if !keyByte(seg[i]) {
				return fmt.Errorf("%w: %q contains byte %q", ErrInvalidKey, key, seg[i])
			}
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or a key optionally ending in "/".
func ValidatePrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix == "" {
			return nil
		}
		return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	return ValidateKey(p)
}

func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ReadAll reads a whole object into memory. Use it only for small objects
// such as metadata documents; limit caps how much is read.
func ReadAll(ctx context.Context, s Store, key string, limit int64) ([]byte, error) {
	rc, info, err := s.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > limit {
		return nil, fmt.Errorf("cannot read %q: %w: %d bytes exceed the %d-byte limit", key, ErrTooLarge, info.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("cannot read %q: %w: more than %d bytes", key, ErrTooLarge, limit)
	}
	return data, nil
}
