package regclient

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestClientMovesToTheNextReplica: a replica that cannot be reached is
// skipped for every call; one answering 503 is skipped for reads only,
// since a write it refused might be repeated elsewhere by the caller.
func TestClientMovesToTheNextReplica(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused

	var unavailableHits, okHits atomic.Int64
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unavailableHits.Add(1)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unreachable"})
	}))
	defer unavailable.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		okHits.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"model": "m", "version": "v1", "digest": "sha256:00"})
	}))
	defer ok.Close()
	ctx := context.Background()

	c := &Client{BaseURL: dead + ", " + ok.URL}
	for i := 0; i < 3; i++ {
		if _, err := c.GetVersion(ctx, "m", "v1"); err != nil {
			t.Fatalf("read %d with the first replica down: %v", i, err)
		}
	}
	if _, err := c.CreateVersion(ctx, "m", "v2", wire.NewVersion{Digest: "sha256:00"}); err != nil {
		t.Fatalf("write with the first replica down: %v", err)
	}
	if okHits.Load() != 4 {
		t.Fatalf("the live replica got %d calls, want 4", okHits.Load())
	}

	c = &Client{BaseURL: unavailable.URL + "," + ok.URL}
	if _, err := c.GetVersion(ctx, "m", "v1"); err != nil {
		t.Fatalf("read with the first replica answering 503: %v", err)
	}
	c = &Client{BaseURL: unavailable.URL + "," + ok.URL}
	_, err = c.CreateVersion(ctx, "m", "v2", wire.NewVersion{Digest: "sha256:00"})
	if !IsStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("write to a replica answering 503: %v, want that 503 (not repeated elsewhere)", err)
	}

	// A body that cannot be rewound is not sent twice.
	c = &Client{BaseURL: dead + "," + ok.URL}
	if _, err := c.PutBlob(ctx, "sha256:00", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("seekable body: %v", err)
	}
	c = &Client{BaseURL: dead + "," + ok.URL}
	if _, err := c.PutBlob(ctx, "sha256:00", onlyReader{strings.NewReader("x")}, 1); err != nil && !strings.Contains(err.Error(), "cannot be rewound") {
		t.Fatalf("unseekable body: %v", err)
	}
}

type onlyReader struct{ r *strings.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
