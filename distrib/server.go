package distrib

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/httperr"
	"github.com/sentimentpro/sentiment/internal/obs"
	"github.com/sentimentpro/sentiment/model"
)

// BlobPath is where a blob server serves an artifact: BlobPath + digest.
const BlobPath = "/v1/blobs/"

// Server serves the artifacts an edge holds verified to the peers of its
// region, a bounded number at a time.
type Server struct {
	// Path returns where the verified artifact with digest is kept.
	Path func(digest string) string
	// Slots bounds the uploads at once (default 4). A request past it
	// waits up to Queue (default 2s) for a slot, then is answered 503 with
	// Retry-After and asks another peer: waiting costs less than a fleet
	// asking again and again.
	Slots int
	Queue time.Duration
	slots chan struct{}
}

// acquire takes an upload slot for r, waiting up to Queue; the caller
// releases it with release.
func (s *Server) acquire(r *http.Request) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.Queue)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-r.Context().Done():
	}
	return false
}

func (s *Server) release() { <-s.slots }

// Handler returns the blob server's routes: BlobPath and /health/live.
func (s *Server) Handler() http.Handler {
	if s.Slots <= 0 {
		s.Slots = 4
	}
	if s.Queue <= 0 {
		s.Queue = 2 * time.Second
	}
	s.slots = make(chan struct{}, s.Slots)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BlobPath+"{digest}", s.serve)
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if _, err := model.ParseDigest(digest); err != nil {
		writeError(w, r, httperr.New(http.StatusBadRequest, "%v", err))
		return
	}
	if !s.acquire(r) {
		uploadsRefused.Inc()
		writeError(w, r, httperr.New(http.StatusServiceUnavailable, "this edge uploads %d artifacts at once; ask another peer", s.Slots))
		return
	}
	defer s.release()
	f, err := os.Open(s.Path(digest))
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, r, httperr.New(http.StatusNotFound, "this edge does not hold %s", digest))
		return
	}
	if err != nil {
		writeError(w, r, httperr.Wrap(http.StatusInternalServerError, "cannot read the artifact", err))
		return
	}
	defer f.Close()
	uploads.Inc()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+digest+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, f)
	uploadBytes.Add(int(cw.n))
}

// countingWriter counts the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps net/http's own ReadFrom (sendfile from the cached file)
// under the count.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Digests lists the verified artifacts among names (directory entries named
// <hex>+suffix), as digests.
func Digests(names []string, suffix string) []string {
	var out []string
	for _, n := range names {
		if hexPart, ok := strings.CutSuffix(n, suffix); ok && len(hexPart) == 64 {
			out = append(out, "sha256:"+hexPart)
		}
	}
	return out
}

// writeError answers err as JSON with the caller's request ID, or a new
// one (a 503 carries Retry-After: 1).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	id := r.Header.Get("X-Request-ID")
	if !obs.ValidRequestID(id) {
		id = obs.NewRequestID()
	}
	httperr.WriteHTTP(w, err, id)
}
