// Package regclient is the registry as its clients see it: the Go client
// of sentctl, the edges and the local stack, speaking the documents of
// package wire. It holds no server code, so a binary that only talks to
// the registry (the edge) does not link the registry server.
package regclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sentimentpro/sentiment/internal/backoff"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// Client talks to a registry over HTTP. sentctl and the edges use it.
type Client struct {
	// BaseURL is the registry, e.g. http://127.0.0.1:8081, or several
	// replicas separated by commas: the client sticks to the one that last
	// answered and moves to the next when one cannot be reached.
	BaseURL string
	Token   string
	HTTP    *http.Client
	// RequestID, if set, is sent as X-Request-ID on every request.
	RequestID string

	preferred atomic.Uint32 // index of the replica that last answered
}

// APIError is a non-2xx answer from the registry.
type APIError struct {
	Status    int
	Message   string
	RequestID string
	// RetryAfter is the answer's Retry-After (a 503 when the registry
	// streams as many artifacts as it allows), 0 without one.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry answered %d: %s", e.Status, e.Message)
}

// IsStatus reports whether err is an APIError with that status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// defaultHTTP is the client of a Client without HTTP: never without a
// timeout, long enough for a blocking query (which waits at most a
// minute) and a large artifact on a fair link.
var defaultHTTP = &http.Client{Timeout: 5 * time.Minute}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// replicas returns the registry URLs in BaseURL.
func (c *Client) replicas() []string {
	var out []string
	for _, u := range strings.Split(c.BaseURL, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// request is one call: its body can be produced again for another replica.
type request struct {
	method, path string
	body         func() (io.Reader, error) // nil: no body
	prepare      func(*http.Request)       // extra headers, content length
}

// send tries the replicas in turn, starting with the one that last
// answered. It moves on when a connection cannot be made (nothing was
// sent, so any call is safe to repeat) and, for reads, on any transport
// error or a 502, 503 or 504 answer.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	urls := c.replicas()
	first := int(c.preferred.Load()) % len(urls)
	var lastErr error
	for i := range urls {
		n := (first + i) % len(urls)
		var body io.Reader
		if r.body != nil {
			b, err := r.body()
			if err != nil {
				return nil, errors.Join(lastErr, err)
			}
			body = b
		}
		req, err := http.NewRequestWithContext(ctx, r.method, urls[n]+r.path, body)
		if err != nil {
			return nil, err
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if c.RequestID != "" {
			req.Header.Set("X-Request-ID", c.RequestID)
		}
		if r.prepare != nil {
			r.prepare(req)
		}
		resp, err := c.httpClient().Do(req)
		last := i == len(urls)-1
		read := r.method == http.MethodGet
		switch {
		case err == nil && (last || !read || !unavailable(resp.StatusCode)):
			c.preferred.Store(uint32(n))
			return resp, nil
		case err == nil:
			resp.Body.Close()
			lastErr = fmt.Errorf("registry %s answered %s", urls[n], resp.Status)
		case last || ctx.Err() != nil || !(read || notConnected(err)):
			return nil, fmt.Errorf("cannot reach registry: %w", err)
		default:
			lastErr = err
		}
	}
	return nil, fmt.Errorf("cannot reach registry: %w", lastErr)
}

func unavailable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// notConnected reports a failure to connect, before anything was sent.
func notConnected(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// bytesBody replays data for every replica tried.
func bytesBody(data []byte) func() (io.Reader, error) {
	return func() (io.Reader, error) { return bytes.NewReader(data), nil }
}

// do sends r and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, r request, out any) (*http.Response, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var body struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &body) != nil || body.Error == "" {
			body.Error = strings.TrimSpace(string(data))
		}
		return resp, &APIError{Status: resp.StatusCode, Message: body.Error, RequestID: body.RequestID,
			RetryAfter: backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter)}
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
			return resp, fmt.Errorf("cannot decode registry answer: %w", err)
		}
	}
	return resp, nil
}

func (c *Client) jsonRequest(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	r := request{method: method, path: path}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		r.body = bytesBody(data)
		r.prepare = func(req *http.Request) { req.Header.Set("Content-Type", "application/json") }
	}
	return c.do(ctx, r, out)
}

// PutBlob uploads an artifact of size bytes (-1 if unknown) whose digest
// the caller computed.
// A body that is an io.Seeker is sent again from its start to another
// replica if the first cannot be reached; any other body only once.
func (c *Client) PutBlob(ctx context.Context, digest string, body io.Reader, size int64) (wire.Blob, error) {
	used := false
	r := request{method: http.MethodPut, path: "/v1/blobs/" + url.PathEscape(digest),
		body: func() (io.Reader, error) {
			if used {
				s, ok := body.(io.Seeker)
				if !ok {
					return nil, errors.New("cannot send the artifact to another replica: its reader cannot be rewound")
				}
				if _, err := s.Seek(0, io.SeekStart); err != nil {
					return nil, err
				}
			}
			used = true
			return body, nil
		},
		prepare: func(req *http.Request) {
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/octet-stream")
		}}
	var b wire.Blob
	_, err := c.do(ctx, r, &b)
	return b, err
}

// Publish is the publisher's whole sequence: it uploads an artifact of
// size bytes and creates model/version from it with nv. nv.Digest is the
// artifact's digest; when it is empty and body can be rewound, Publish
// reads body once to compute it.
func (c *Client) Publish(ctx context.Context, model, version string, body io.Reader, size int64, nv wire.NewVersion) (wire.Version, error) {
	if nv.Digest == "" {
		rs, ok := body.(io.ReadSeeker)
		if !ok {
			return wire.Version{}, errors.New("cannot publish: no digest given and the artifact cannot be read twice")
		}
		h := sha256.New()
		if _, err := io.Copy(h, rs); err != nil {
			return wire.Version{}, fmt.Errorf("cannot read artifact: %w", err)
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return wire.Version{}, fmt.Errorf("cannot rewind artifact: %w", err)
		}
		nv.Digest = fmt.Sprintf("sha256:%x", h.Sum(nil))
	}
	if _, err := c.PutBlob(ctx, nv.Digest, body, size); err != nil {
		return wire.Version{}, fmt.Errorf("cannot upload the artifact of %s/%s: %w", model, version, err)
	}
	v, err := c.CreateVersion(ctx, model, version, nv)
	if err != nil {
		return wire.Version{}, fmt.Errorf("cannot create %s/%s: %w", model, version, err)
	}
	return v, nil
}

// CreateVersion creates model/version from an uploaded blob.
func (c *Client) CreateVersion(ctx context.Context, model, version string, nv wire.NewVersion) (wire.Version, error) {
	var v wire.Version
	_, err := c.jsonRequest(ctx, http.MethodPut, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), nv, &v)
	return v, err
}

// GetVersion fetches version metadata.
func (c *Client) GetVersion(ctx context.Context, model, version string) (wire.Version, error) {
	var v wire.Version
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), nil, &v)
	return v, err
}

// Resolve asks which version a channel serves in region. With index > 0
// it is a blocking query: it returns when the channel's revision exceeds
// index or wait passes.
func (c *Client) Resolve(ctx context.Context, model, channel, region string, index uint64, wait time.Duration) (wire.Resolution, error) {
	q := blockingQuery(index, wait)
	if region != "" {
		q.Set("region", region)
	}
	var res wire.Resolution
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/resolve?"+q.Encode(), nil, &res)
	return res, err
}

// GetChannel fetches a channel, blocking like Resolve when index > 0.
func (c *Client) GetChannel(ctx context.Context, model, channel string, index uint64, wait time.Duration) (wire.Channel, error) {
	q := blockingQuery(index, wait)
	var ch wire.Channel
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"?"+q.Encode(), nil, &ch)
	return ch, err
}

// blockingQuery is the query of a Consul-style blocking read: answer when
// the revision passes index, or after wait. index 0 answers at once.
func blockingQuery(index uint64, wait time.Duration) url.Values {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	return q
}

// maxRetryAfter caps how long a Retry-After holds a client back.
const maxRetryAfter = time.Minute

// Download streams an artifact by digest into w and returns the bytes
// written.
func (c *Client) Download(ctx context.Context, digest string, w io.Writer) (int64, error) {
	body, _, err := c.OpenBlob(ctx, digest, 0)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.Copy(w, body)
	if err != nil {
		return n, fmt.Errorf("download of %s cut short after %d bytes: %w", digest, n, err)
	}
	return n, nil
}

// OpenBlob opens an artifact by digest from byte offset on (a download
// that resumes), and returns the artifact's whole size. A registry at its
// limit of artifact streams answers an *APIError with status 503 and a
// RetryAfter.
func (c *Client) OpenBlob(ctx context.Context, digest string, offset int64) (io.ReadCloser, int64, error) {
	r := request{method: http.MethodGet, path: "/v1/blobs/" + url.PathEscape(digest)}
	if offset > 0 {
		r.prepare = func(req *http.Request) { req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset)) }
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	size, err := RangeAnswer(resp, offset)
	if err != nil {
		resp.Body.Close()
		return nil, 0, err
	}
	return resp.Body, size, nil
}

// RangeAnswer checks the answer to a GET of an artifact from offset (with
// "Range: bytes=offset-" when offset > 0) and returns the artifact's whole
// size: 200 from the start, or 206 from exactly offset. Anything else is an
// *APIError carrying the answer's Retry-After. The size is -1 when a 200
// does not say it. Peers' blob servers answer
// the same way, so the edge reads both with it.
func RangeAnswer(resp *http.Response, offset int64) (int64, error) {
	switch {
	case resp.StatusCode == http.StatusOK && offset == 0:
		return resp.ContentLength, nil // -1 when not told: the end of the body ends it
	case resp.StatusCode == http.StatusPartialContent:
		var first, last, size int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size); err != nil || first != offset || last != size-1 {
			return 0, fmt.Errorf("answer to a range from byte %d has Content-Range %q", offset, resp.Header.Get("Content-Range"))
		}
		return size, nil
	case resp.StatusCode < 300:
		return 0, fmt.Errorf("answer to a range from byte %d was %s without the range", offset, resp.Status)
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(data))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return 0, &APIError{Status: resp.StatusCode, Message: msg, RetryAfter: backoff.RetryAfter(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter)}
}

// Promote moves a channel to a version.
func (c *Client) Promote(ctx context.Context, model, channel string, req wire.MoveRequest) (wire.Channel, error) {
	var ch wire.Channel
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/promote", req, &ch)
	return ch, err
}

// DryRunPromote asks what a promote would do (req.DryRun is set): the
// quality gate's verdict and the move; nothing changes.
func (c *Client) DryRunPromote(ctx context.Context, model, channel string, req wire.MoveRequest) (wire.DryRun, error) {
	req.DryRun = true
	var out wire.DryRun
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/promote", req, &out)
	return out, err
}

// Rollback moves a channel back.
func (c *Client) Rollback(ctx context.Context, model, channel string, req wire.MoveRequest) (wire.Channel, error) {
	var ch wire.Channel
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/rollback", req, &ch)
	return ch, err
}

// SetCandidate puts a version beside a region's target (admin).
func (c *Client) SetCandidate(ctx context.Context, model, channel, region string, req wire.CandidateRequest) (wire.Channel, error) {
	var ch wire.Channel
	_, err := c.jsonRequest(ctx, http.MethodPut, candidatePath(model, channel, region), req, &ch)
	return ch, err
}

// ClearCandidate removes a region's candidate (admin).
func (c *Client) ClearCandidate(ctx context.Context, model, channel, region string) (wire.Channel, error) {
	var ch wire.Channel
	_, err := c.jsonRequest(ctx, http.MethodDelete, candidatePath(model, channel, region), nil, &ch)
	return ch, err
}

func candidatePath(model, channel, region string) string {
	return "/v1/admin/models/" + url.PathEscape(model) + "/channels/" + url.PathEscape(channel) + "/candidates/" + url.PathEscape(region)
}

// History lists a channel's revisions, newest first.
func (c *Client) History(ctx context.Context, model, channel string, limit int) ([]wire.Channel, error) {
	var out struct {
		History []wire.Channel `json:"history"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, fmt.Sprintf("/v1/admin/models/%s/channels/%s/history?limit=%d", url.PathEscape(model), url.PathEscape(channel), limit), nil, &out)
	return out.History, err
}

// Audit queries the audit trail; q holds the query parameters.
func (c *Client) Audit(ctx context.Context, q url.Values) ([]wire.AuditEntry, error) {
	var out struct {
		Entries []wire.AuditEntry `json:"entries"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/admin/audit?"+q.Encode(), nil, &out)
	return out.Entries, err
}

// Raw sends a JSON request to any path and decodes the answer into out.
func (c *Client) Raw(ctx context.Context, method, path string, in, out any) error {
	_, err := c.jsonRequest(ctx, method, path, in, out)
	return err
}
