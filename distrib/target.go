package distrib

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a Target on disk: the bytes go to Path+".partial", which a cut
// download leaves behind for the next one to continue; Commit renames it
// to Path once the digest matched, so a partial file never becomes a
// model.
type File struct {
	Path string
	f    *os.File
}

func (t *File) partial() string { return t.Path + ".partial" }

func (t *File) open() error {
	if t.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.Path), 0o755); err != nil {
		return fmt.Errorf("cannot create the model cache: %w", err)
	}
	f, err := os.OpenFile(t.partial(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open a download: %w", err)
	}
	t.f = f
	return nil
}

// Held returns the partial file's bytes, if any.
func (t *File) Held() (io.ReadCloser, error) {
	f, err := os.Open(t.partial())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

func (t *File) Write(p []byte) (int, error) {
	if err := t.open(); err != nil {
		return 0, err
	}
	return t.f.Write(p)
}

// Reset truncates the partial file.
func (t *File) Reset() error {
	if err := t.open(); err != nil {
		return err
	}
	return t.f.Truncate(0)
}

// Commit makes the verified download the artifact at Path.
func (t *File) Commit() error {
	if err := t.open(); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("cannot write the artifact: %w", err)
	}
	if err := t.Close(); err != nil {
		return err
	}
	return os.Rename(t.partial(), t.Path)
}

// Close closes the partial file and keeps it for the next download.
func (t *File) Close() error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// Discard is a Target that keeps nothing: the fetch still hashes every
// byte. The scale harness's simulated followers use it (a thousand copies
// of a large artifact would not fit on one machine).
type Discard struct{}

func (Discard) Write(p []byte) (int, error)  { return len(p), nil }
func (Discard) Held() (io.ReadCloser, error) { return nil, nil }
func (Discard) Reset() error                 { return nil }
