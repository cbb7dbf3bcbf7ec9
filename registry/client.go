package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a registry over HTTP. sentctl and the edges use it.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8081
	Token   string
	HTTP    *http.Client
	// RequestID, if set, is sent as X-Request-ID on every request.
	RequestID string
}

// APIError is a non-2xx answer from the registry.
type APIError struct {
	Status    int
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry answered %d: %s", e.Status, e.Message)
}

// IsStatus reports whether err is an APIError with that status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.RequestID != "" {
		req.Header.Set("X-Request-ID", c.RequestID)
	}
	return req, nil
}

// do sends req and decodes a JSON answer into out (if not nil).
func (c *Client) do(req *http.Request, out any) (*http.Response, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach registry: %w", err)
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
		return resp, &APIError{Status: resp.StatusCode, Message: body.Error, RequestID: body.RequestID}
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
			return resp, fmt.Errorf("cannot decode registry answer: %w", err)
		}
	}
	return resp, nil
}

func (c *Client) jsonRequest(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(data)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}

// PutBlob uploads an artifact of size bytes (-1 if unknown) whose digest
// the caller computed.
func (c *Client) PutBlob(ctx context.Context, digest string, body io.Reader, size int64) (Blob, error) {
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/blobs/"+url.PathEscape(digest), body)
	if err != nil {
		return Blob{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	var b Blob
	_, err = c.do(req, &b)
	return b, err
}

// CreateVersion creates model/version from an uploaded blob.
func (c *Client) CreateVersion(ctx context.Context, model, version string, nv NewVersion) (Version, error) {
	var v Version
	_, err := c.jsonRequest(ctx, http.MethodPut, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), nv, &v)
	return v, err
}

// GetVersion fetches version metadata.
func (c *Client) GetVersion(ctx context.Context, model, version string) (Version, error) {
	var v Version
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/versions/"+url.PathEscape(version), nil, &v)
	return v, err
}

// Resolve asks which version a channel serves in region. With index > 0
// it is a blocking query: it returns when the channel's revision exceeds
// index or wait passes.
func (c *Client) Resolve(ctx context.Context, model, channel, region string, index uint64, wait time.Duration) (Resolution, error) {
	q := url.Values{}
	if region != "" {
		q.Set("region", region)
	}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	var res Resolution
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/resolve?"+q.Encode(), nil, &res)
	return res, err
}

// GetChannel fetches a channel, blocking like Resolve when index > 0.
func (c *Client) GetChannel(ctx context.Context, model, channel string, index uint64, wait time.Duration) (Channel, error) {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
	}
	var ch Channel
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"?"+q.Encode(), nil, &ch)
	return ch, err
}

// Download streams an artifact by digest into w, sending If-None-Match
// when etag is set; it returns the bytes written (0 and no error on 304).
func (c *Client) Download(ctx context.Context, digest string, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/blobs/"+url.PathEscape(digest), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach registry: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download of %s cut short after %d bytes: %w", digest, n, err)
	}
	return n, nil
}

// MoveRequest is the body of the admin API's promote and rollback.
type MoveRequest struct {
	// Version to promote; for rollback, an explicit version to roll back to
	// (default: the previous target from the channel's history).
	Version string `json:"version,omitempty"`
	// Regions limits the move to these regions' overrides; empty moves the
	// global target (and, for promote, clears every override).
	Regions []string `json:"regions,omitempty"`
	Force   bool     `json:"force,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	// ExpectRevision makes the move conditional on the channel still being
	// at that revision (409 otherwise), for careful tooling.
	ExpectRevision *uint64 `json:"expect_revision,omitempty"`
}

// Promote moves a channel to a version.
func (c *Client) Promote(ctx context.Context, model, channel string, req MoveRequest) (Channel, error) {
	var ch Channel
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/promote", req, &ch)
	return ch, err
}

// Rollback moves a channel back.
func (c *Client) Rollback(ctx context.Context, model, channel string, req MoveRequest) (Channel, error) {
	var ch Channel
	_, err := c.jsonRequest(ctx, http.MethodPost, "/v1/admin/models/"+url.PathEscape(model)+"/channels/"+url.PathEscape(channel)+"/rollback", req, &ch)
	return ch, err
}

// History lists a channel's revisions, newest first.
func (c *Client) History(ctx context.Context, model, channel string, limit int) ([]Channel, error) {
	var out struct {
		History []Channel `json:"history"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, fmt.Sprintf("/v1/admin/models/%s/channels/%s/history?limit=%d", url.PathEscape(model), url.PathEscape(channel), limit), nil, &out)
	return out.History, err
}

// Audit queries the audit trail; q holds the query parameters.
func (c *Client) Audit(ctx context.Context, q url.Values) ([]AuditEntry, error) {
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	_, err := c.jsonRequest(ctx, http.MethodGet, "/v1/admin/audit?"+q.Encode(), nil, &out)
	return out.Entries, err
}

// Raw sends a JSON request to any path and decodes the answer into out.
func (c *Client) Raw(ctx context.Context, method, path string, in, out any) error {
	_, err := c.jsonRequest(ctx, method, path, in, out)
	return err
}
