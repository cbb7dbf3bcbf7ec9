package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/backoff"
)

// MaxDocSize bounds a document revision.
const MaxDocSize = 1 << 20

// Doc is one revision of a compare-and-swap document.
type Doc struct {
	Key     string
	Rev     uint64 // 1 for the first revision
	Data    []byte
	ModTime time.Time
}

// A document is stored as a sequence of write-once revision objects under
// "<key>/r<inverted revision>". The revision number is inverted
// (MaxUint64-rev, zero-padded) so that listing the prefix returns the newest
// revision first: reading the current value is one List with limit 1 and one
// GET, and the sequence itself is the document's history.
//
// Compare-and-swap falls out of write-once Put: the writer that read revision
// N creates revision N+1; if another writer got there first, Put returns
// ErrExists and the caller gets ErrConflict. A stale writer (read N, while
// N+1 already exists) collides on N+1 in the same way.

func revKey(key string, rev uint64) string {
	return fmt.Sprintf("%s/r%020d", key, math.MaxUint64-rev)
}

func parseRevKey(key, objKey string) (uint64, bool) {
	s, ok := strings.CutPrefix(objKey, key+"/r")
	if !ok || len(s) != 20 {
		return 0, false
	}
	inv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return math.MaxUint64 - inv, true
}

// ReadDoc returns the newest revision of the document at key, or ErrNotFound.
func ReadDoc(ctx context.Context, s Store, key string) (Doc, error) {
	docs, err := DocHistory(ctx, s, key, 1)
	if err != nil {
		return Doc{}, err
	}
	if len(docs) == 0 {
		return Doc{}, fmt.Errorf("cannot read document %q: %w", key, ErrNotFound)
	}
	return docs[0], nil
}

// WriteDoc creates revision prevRev+1 of the document at key. prevRev is the
// revision the caller read (0 to create the document). It returns
// ErrConflict when that revision is no longer the newest.
func WriteDoc(ctx context.Context, s Store, key string, data []byte, prevRev uint64) (uint64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if len(data) > MaxDocSize {
		return 0, fmt.Errorf("cannot write document %q: %d bytes exceed %d", key, len(data), MaxDocSize)
	}
	if prevRev == math.MaxUint64-1 {
		return 0, fmt.Errorf("cannot write document %q: revision space exhausted", key)
	}
	if prevRev > 0 {
		// A revision ahead of the newest would leave a gap that hides
		// every revision in between; only an existing revision is a base.
		if _, err := s.Stat(ctx, revKey(key, prevRev)); errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("cannot write document %q: revision %d does not exist: %w", key, prevRev, ErrConflict)
		} else if err != nil {
			return 0, fmt.Errorf("cannot write document %q: %w", key, err)
		}
	}
	rev := prevRev + 1
	_, err := s.Put(ctx, revKey(key, rev), bytes.NewReader(data), int64(len(data)))
	if errors.Is(err, ErrExists) {
		return 0, fmt.Errorf("cannot write document %q at revision %d: %w", key, rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot write document %q: %w", key, err)
	}
	return rev, nil
}

// DocHistory returns up to limit revisions of the document, newest first.
func DocHistory(ctx context.Context, s Store, key string, limit int) ([]Doc, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	infos, err := s.List(ctx, key+"/r", "", limit)
	if err != nil {
		return nil, fmt.Errorf("cannot list revisions of %q: %w", key, err)
	}
	docs := make([]Doc, 0, len(infos))
	for _, info := range infos {
		rev, ok := parseRevKey(key, info.Key)
		if !ok {
			continue
		}
		data, err := ReadAll(ctx, s, info.Key, MaxDocSize)
		if err != nil {
			return nil, fmt.Errorf("cannot read revision %d of %q: %w", rev, key, err)
		}
		docs = append(docs, Doc{Key: key, Rev: rev, Data: data, ModTime: info.ModTime})
	}
	return docs, nil
}

// DocRevision returns the newest revision number of the document at key
// (0 if it does not exist) with one List and no GET: cheap enough to poll.
func DocRevision(ctx context.Context, s Store, key string) (uint64, error) {
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	infos, err := s.List(ctx, key+"/r", "", 1)
	if err != nil {
		return 0, fmt.Errorf("cannot list revisions of %q: %w", key, err)
	}
	for _, info := range infos {
		if rev, ok := parseRevKey(key, info.Key); ok {
			return rev, nil
		}
	}
	return 0, nil
}

// updateAttempts bounds UpdateDoc's reads and writes of one document.
const updateAttempts = 32

// UpdateDoc is the one read–decide–write of a document: it reads the
// document at key, lets decide compute the next data from it, and writes
// that by compare-and-swap. When another writer got there first it reads
// and decides again, after a short random wait, up to updateAttempts
// times; then it fails with ErrConflict. decide gets Rev 0 and no Data
// when there is no document yet, may return nil to leave the document as
// it is (UpdateDoc then returns the Doc it read), and ends the update with
// any error it returns. It returns the document as written.
func UpdateDoc(ctx context.Context, s Store, key string, decide func(cur Doc) ([]byte, error)) (Doc, error) {
	wait := backoff.Backoff{First: time.Millisecond, Max: 50 * time.Millisecond}
	for range updateAttempts {
		cur, err := ReadDoc(ctx, s, key)
		if errors.Is(err, ErrNotFound) {
			cur, err = Doc{Key: key}, nil
		}
		if err != nil {
			return Doc{}, err
		}
		next, err := decide(cur)
		if err != nil || next == nil {
			return cur, err
		}
		rev, err := WriteDoc(ctx, s, key, next, cur.Rev)
		if errors.Is(err, ErrConflict) {
			if !backoff.Sleep(ctx, wait.Next()) {
				return Doc{}, ctx.Err()
			}
			continue
		}
		if err != nil {
			return Doc{}, err
		}
		return Doc{Key: key, Rev: rev, Data: next}, nil
	}
	return Doc{}, fmt.Errorf("cannot update document %q: %w: it changed %d times while being updated", key, ErrConflict, updateAttempts)
}
