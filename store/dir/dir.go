// Package dir implements store.Store on a local directory. It is the embedded
// default for `make run` and single-node set-ups; it is safe for concurrent use
// by several processes on one filesystem.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sentimentpro/sentiment/store"
)

var _ store.Store = (*Store)(nil)

// tmpDir holds objects being written. Keys under it are refused by Put and
// skipped by List.
const tmpDir = ".tmp"

// Store keeps each object as a file under Root, named by its key.
type Store struct {
	Root string
}

// New creates the root directory if needed and returns a Store on it.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve store directory %q: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create store directory %q: %w", abs, err)
	}
	return &Store{Root: abs}, nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.Root, filepath.FromSlash(key))
}

// Put writes r to a temporary file, syncs it and links it into place. The
// link fails if the key exists, which makes Put write-once and atomic.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (store.Info, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.Info{}, err
	}
	if strings.HasPrefix(key, tmpDir+"/") || key == tmpDir {
		return store.Info{}, fmt.Errorf("%w: %q is reserved", store.ErrInvalidKey, key)
	}
	final := s.path(key)
	if _, err := os.Lstat(final); err == nil {
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, store.ErrExists)
	}
	tmp, err := os.CreateTemp(filepath.Join(s.Root, tmpDir), "put-*")
	if err != nil {
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	n, err := copyCtx(ctx, tmp, r)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("read %d bytes, expected %d", n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, err)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return store.Info{}, fmt.Errorf("cannot put %q: %w", key, store.ErrExists)
		}
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, err)
	}
	return s.Stat(ctx, key)
}

// copyCtx copies like io.Copy but stops when ctx is done.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Open returns a reader over a byte range of the object.
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, store.Info{}, err
	}
	if offset < 0 || offset > info.Size {
		return nil, store.Info{}, fmt.Errorf("cannot open %q: offset %d outside 0..%d", key, offset, info.Size)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, store.Info{}, fmt.Errorf("cannot open %q: %w", key, err)
	}
	if length < 0 || offset+length > info.Size {
		length = info.Size - offset
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, info, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(_ context.Context, key string) (store.Info, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.Info{}, err
	}
	fi, err := os.Stat(s.path(key))
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir() {
		return store.Info{}, fmt.Errorf("cannot stat %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return store.Info{}, fmt.Errorf("cannot stat %q: %w", key, err)
	}
	return store.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object's file.
func (s *Store) Delete(_ context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	err := os.Remove(s.path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot delete %q: %w", key, err)
	}
	return nil
}

// List walks the deepest directory the prefix names and returns matching
// keys in byte order (not directory order, which differs around '/').
func (s *Store) List(_ context.Context, prefix, startAfter string, limit int) ([]store.Info, error) {
	if err := store.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	base := s.Root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = s.path(prefix[:i])
	}
	var keys []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(s.Root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == tmpDir {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(key, prefix) && key > startAfter {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list %q: %w", prefix, err)
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	infos := make([]store.Info, 0, len(keys))
	for _, k := range keys {
		fi, err := os.Stat(s.path(k))
		if err != nil {
			continue // deleted meanwhile
		}
		infos = append(infos, store.Info{Key: k, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return infos, nil
}
