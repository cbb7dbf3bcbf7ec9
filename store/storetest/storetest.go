// Package storetest is the conformance suite every store.Store
// implementation must pass. Each implementation's test calls Run with a
// constructor that returns an empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/store"
)

// Options tunes the suite for an implementation.
type Options struct {
	// LargeSize is the size of the streamed-upload test; 0 means 64 MiB.
	LargeSize int64
	// MaxRSSGrowth bounds the process peak-RSS growth during that upload;
	// 0 means 32 MiB.
	MaxRSSGrowth int64
}

// Run runs every conformance test against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	if opts.LargeSize == 0 {
		opts.LargeSize = 64 << 20
	}
	if opts.MaxRSSGrowth == 0 {
		opts.MaxRSSGrowth = 32 << 20
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"WriteOnce", testWriteOnce},
		{"ConcurrentPutOneWinner", testConcurrentPut},
		{"InvalidKeys", testInvalidKeys},
		{"Range", testRange},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"List", testList},
		{"InterruptedPutLeavesNothing", testInterruptedPut},
		{"DocCAS", testDocCAS},
		{"DocConcurrentWriters", testDocConcurrent},
		{"UpdateDoc", testUpdateDoc},
		{"LargeStreamedPut", func(t *testing.T, s store.Store) { testLarge(t, s, opts) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s store.Store, key, data string) store.Info {
	t.Helper()
	info, err := s.Put(context.Background(), key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func read(t *testing.T, s store.Store, key string, off, n int64) string {
	t.Helper()
	rc, _, err := s.Open(context.Background(), key, off, n)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return string(b)
}

func testPutGet(t *testing.T, s store.Store) {
	info := put(t, s, "models/m/v1/artifact.bin", "hello artifact")
	if info.Size != 14 || info.Key != "models/m/v1/artifact.bin" {
		t.Fatalf("Put info = %+v", info)
	}
	st, err := s.Stat(context.Background(), "models/m/v1/artifact.bin")
	if err != nil || st.Size != 14 || st.ModTime.IsZero() {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	if got := read(t, s, "models/m/v1/artifact.bin", 0, -1); got != "hello artifact" {
		t.Fatalf("read back %q", got)
	}
	// Unknown size is allowed.
	if _, err := s.Put(context.Background(), "unknown-size", strings.NewReader("abc"), -1); err != nil {
		t.Fatalf("Put with size -1: %v", err)
	}
	if got := read(t, s, "unknown-size", 0, -1); got != "abc" {
		t.Fatalf("read back %q", got)
	}
	// A declared size that does not match the stream is an error.
	if _, err := s.Put(context.Background(), "short", strings.NewReader("abc"), 10); err == nil {
		t.Fatal("Put with a size larger than the stream succeeded")
	}
}

func testWriteOnce(t *testing.T, s store.Store) {
	put(t, s, "k", "first")
	_, err := s.Put(context.Background(), "k", strings.NewReader("second"), 6)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Put: err = %v, want ErrExists", err)
	}
	if got := read(t, s, "k", 0, -1); got != "first" {
		t.Fatalf("object changed to %q", got)
	}
}

func testConcurrentPut(t *testing.T, s store.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := fmt.Sprintf("writer-%d", i)
			_, errs[i] = s.Put(context.Background(), "race", strings.NewReader(data), int64(len(data)))
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers won, want exactly 1", winners)
	}
	if got := read(t, s, "race", 0, -1); !strings.HasPrefix(got, "writer-") {
		t.Fatalf("content %q", got)
	}
}

func testInvalidKeys(t *testing.T, s store.Store) {
	for _, key := range []string{"", "/abs", "a//b", "a/../b", "..", "a/.", "trailing/", "sp ace", "uni\u00e9", strings.Repeat("x", store.MaxKeyLen+1)} {
		_, err := s.Put(context.Background(), key, strings.NewReader("x"), 1)
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(context.Background(), key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%q): err = %v, want ErrInvalidKey", key, err)
		}
	}
}

func testRange(t *testing.T, s store.Store) {
	put(t, s, "r", "0123456789")
	f := func(off, n int64, want string) {
		t.Helper()
		if got := read(t, s, "r", off, n); got != want {
			t.Errorf("range (%d,%d) = %q, want %q", off, n, got, want)
		}
	}
	f(0, -1, "0123456789")
	f(2, 3, "234")
	f(7, -1, "789")
	f(8, 100, "89")
	f(0, 1, "0")
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat: %v", err)
	}
	if _, _, err := s.Open(ctx, "missing", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open: %v", err)
	}
	if _, err := store.ReadDoc(ctx, s, "docs/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadDoc: %v", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	put(t, s, "d/x", "x")
	if err := s.Delete(context.Background(), "d/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(context.Background(), "d/x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	if err := s.Delete(context.Background(), "d/x"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	put(t, s, "d/x", "again") // a deleted key can be written anew
}

func testList(t *testing.T, s store.Store) {
	keys := []string{"a/b", "a-c", "a/a/z", "a/c", "b", "a.d/e", "aa"}
	for _, k := range keys {
		put(t, s, k, k)
	}
	f := func(prefix, after string, limit int, want ...string) {
		t.Helper()
		infos, err := s.List(context.Background(), prefix, after, limit)
		if err != nil {
			t.Fatalf("List(%q,%q,%d): %v", prefix, after, limit, err)
		}
		var got []string
		for _, in := range infos {
			got = append(got, in.Key)
			if in.Size != int64(len(in.Key)) {
				t.Errorf("size of %q = %d", in.Key, in.Size)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("List(%q,%q,%d) = %v, want %v", prefix, after, limit, got, want)
		}
	}
	f("", "", 0, "a-c", "a.d/e", "a/a/z", "a/b", "a/c", "aa", "b")
	f("a/", "", 0, "a/a/z", "a/b", "a/c")
	f("a/", "a/a/z", 0, "a/b", "a/c")
	f("a/", "", 2, "a/a/z", "a/b")
	f("a", "", 3, "a-c", "a.d/e", "a/a/z")
	f("zzz", "", 0)
	f("a/a/", "", 0, "a/a/z")
}

// failingReader yields n bytes then an error, like a client that hangs up.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("client went away")
	}
	m := min(len(p), r.n)
	for i := range m {
		p[i] = 'x'
	}
	r.n -= m
	return m, nil
}

func testInterruptedPut(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, size := range []int64{-1, 20 << 20} {
		_, err := s.Put(ctx, "cut", &failingReader{n: 12 << 20}, size)
		if err == nil {
			t.Fatalf("Put of a failing stream (size %d) succeeded", size)
		}
		if _, err := s.Stat(ctx, "cut"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after a failed Put (size %d), Stat = %v, want ErrNotFound", size, err)
		}
		infos, err := s.List(ctx, "", "", 0)
		if err != nil || len(infos) != 0 {
			t.Fatalf("after a failed Put, List = %v, %v", infos, err)
		}
	}
	put(t, s, "cut", "complete")
	if got := read(t, s, "cut", 0, -1); got != "complete" {
		t.Fatalf("got %q", got)
	}
}

func testDocCAS(t *testing.T, s store.Store) {
	ctx := context.Background()
	key := "channels/m/production"
	rev, err := store.WriteDoc(ctx, s, key, []byte(`{"v":1}`), 0)
	if err != nil || rev != 1 {
		t.Fatalf("create: rev %d, %v", rev, err)
	}
	if _, err := store.WriteDoc(ctx, s, key, []byte(`{"v":"dup"}`), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	rev, err = store.WriteDoc(ctx, s, key, []byte(`{"v":2}`), 1)
	if err != nil || rev != 2 {
		t.Fatalf("update: rev %d, %v", rev, err)
	}
	if _, err := store.WriteDoc(ctx, s, key, []byte(`{"v":"stale"}`), 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if _, err := store.WriteDoc(ctx, s, key, []byte(`{"v":"ahead"}`), 7); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update from a future revision: %v, want ErrConflict", err)
	}
	doc, err := store.ReadDoc(ctx, s, key)
	if err != nil || doc.Rev != 2 || string(doc.Data) != `{"v":2}` {
		t.Fatalf("ReadDoc = %+v, %v", doc, err)
	}
	hist, err := store.DocHistory(ctx, s, key, 0)
	if err != nil || len(hist) != 2 || hist[0].Rev != 2 || hist[1].Rev != 1 || string(hist[1].Data) != `{"v":1}` {
		t.Fatalf("DocHistory = %+v, %v", hist, err)
	}
	// Documents with a shared prefix do not see each other's revisions.
	if _, err := store.WriteDoc(ctx, s, key+"-eu", []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	if doc, _ := store.ReadDoc(ctx, s, key); doc.Rev != 2 {
		t.Fatalf("neighbour document changed rev to %d", doc.Rev)
	}
}

func testDocConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 6, 4
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				var prev uint64
				if doc, err := store.ReadDoc(ctx, s, "counter"); err == nil {
					prev = doc.Rev
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
				val := fmt.Sprintf("w%d-%d", w, i)
				rev, err := store.WriteDoc(ctx, s, "counter", []byte(val), prev)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[rev] = val
				mu.Unlock()
				i++
			}
		}()
	}
	wg.Wait()
	hist, err := store.DocHistory(ctx, s, "counter", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != writers*each || len(acked) != writers*each {
		t.Fatalf("history has %d revisions, %d acknowledged, want %d", len(hist), len(acked), writers*each)
	}
	for i, d := range hist {
		if want := uint64(len(hist) - i); d.Rev != want {
			t.Fatalf("history[%d].Rev = %d, want %d", i, d.Rev, want)
		}
		if acked[d.Rev] != string(d.Data) {
			t.Fatalf("revision %d holds %q, acknowledged %q", d.Rev, d.Data, acked[d.Rev])
		}
	}
}

// testUpdateDoc: concurrent increments through UpdateDoc lose none; a
// decide that returns nil writes nothing; its error ends the update.
func testUpdateDoc(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 6, 4
	increment := func(cur store.Doc) ([]byte, error) {
		n := 0
		if cur.Rev > 0 {
			n, _ = strconv.Atoi(string(cur.Data))
		}
		return []byte(strconv.Itoa(n + 1)), nil
	}
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := store.UpdateDoc(ctx, s, "tally", increment); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	doc, err := store.ReadDoc(ctx, s, "tally")
	if err != nil || string(doc.Data) != strconv.Itoa(writers*each) || doc.Rev != writers*each {
		t.Fatalf("after %d increments: %q at revision %d, %v", writers*each, doc.Data, doc.Rev, err)
	}
	same, err := store.UpdateDoc(ctx, s, "tally", func(store.Doc) ([]byte, error) { return nil, nil })
	if err != nil || same.Rev != doc.Rev {
		t.Errorf("a decide of nil wrote revision %d (was %d): %v", same.Rev, doc.Rev, err)
	}
	refuse := errors.New("refused")
	if _, err := store.UpdateDoc(ctx, s, "tally", func(store.Doc) ([]byte, error) { return nil, refuse }); !errors.Is(err, refuse) {
		t.Errorf("decide's error came back as %v", err)
	}
}

// randReader streams deterministic pseudo-random bytes without holding them.
type randReader struct {
	rng  *rand.ChaCha8
	left int64
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	r.rng.Read(p)
	r.left -= int64(len(p))
	return len(p), nil
}

func testLarge(t *testing.T, s store.Store, opts Options) {
	ctx := context.Background()
	seed := [32]byte{1, 2, 3}
	want := sha256.New()
	if _, err := io.Copy(want, &randReader{rand.NewChaCha8(seed), opts.LargeSize}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	pid := os.Getpid()
	if err := testenv.ResetPeakRSS(pid); err != nil {
		t.Fatalf("cannot reset peak RSS: %v", err)
	}
	before, err := testenv.ProcStatus(pid, "VmRSS:")
	if err != nil {
		t.Fatalf("cannot measure RSS: %v", err)
	}
	info, err := s.Put(ctx, "large/blob", &randReader{rand.NewChaCha8(seed), opts.LargeSize}, -1)
	if err != nil {
		t.Fatalf("large Put: %v", err)
	}
	peak, err := testenv.ProcStatus(pid, "VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	growth := peak - before
	t.Logf("streamed %d MiB upload: peak RSS grew by %.1f MiB (limit %d MiB)",
		opts.LargeSize>>20, float64(growth)/(1<<20), opts.MaxRSSGrowth>>20)
	if growth > opts.MaxRSSGrowth {
		t.Errorf("peak RSS grew by %d bytes during the upload, limit %d", growth, opts.MaxRSSGrowth)
	}
	if info.Size != opts.LargeSize {
		t.Fatalf("stored size %d, want %d", info.Size, opts.LargeSize)
	}
	rc, _, err := s.Open(ctx, "large/blob", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := sha256.New()
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("large object read back with a different SHA-256")
	}
}
