// Package s3 implements store.Store on an S3-compatible server through
// minio-go. Write-once semantics come from conditional PUTs
// (If-None-Match: *), so several registry replicas can share one bucket.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/VictoriaMetrics/metrics"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sentimentpro/sentiment/store"
)

var _ store.Store = (*Store)(nil)

// DefaultPartSize is the multipart chunk size for uploads of unknown length.
// minio-go buffers one part in memory, so it bounds a streaming upload's
// memory use; 10,000 parts of 8 MiB allow objects up to 78 GiB.
const DefaultPartSize = 8 << 20

// Config says how to reach the bucket.
type Config struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	Secure    bool   // use HTTPS
	PartSize  uint64 // 0 means DefaultPartSize
	// Transport overrides the HTTP transport (tests use it to add timeouts).
	Transport http.RoundTripper
}

// Store is a store.Store on one S3 bucket.
type Store struct {
	client   *minio.Client
	bucket   string
	partSize uint64
}

// New returns a Store for cfg. It does not contact the server; call Check
// for that.
func New(cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("cannot create S3 store: endpoint and bucket are required")
	}
	transport := cfg.Transport
	if transport == nil {
		t, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, fmt.Errorf("cannot create S3 transport: %w", err)
		}
		transport = t
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: countingTransport{transport},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create S3 client for %q: %w", cfg.Endpoint, err)
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	return &Store{client: client, bucket: cfg.Bucket, partSize: part}, nil
}

// Check verifies that the bucket is reachable and exists.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("cannot reach bucket %q: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("bucket %q does not exist", s.bucket)
	}
	return nil
}

// EnsureBucket creates the bucket if it does not exist yet.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("cannot reach bucket %q: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("cannot create bucket %q: %w", s.bucket, err)
	}
	return nil
}

// Put uploads r with If-None-Match: * so that an existing key is never
// overwritten. Uploads of unknown or large size go multipart with a bounded
// part buffer; minio-go aborts the multipart upload on failure, so nothing
// becomes visible.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (store.Info, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.Info{}, err
	}
	opts := minio.PutObjectOptions{
		PartSize:    s.partSize,
		ContentType: "application/octet-stream",
		// One part buffer at a time keeps memory bounded to PartSize.
		NumThreads: 1,
	}
	opts.SetMatchETagExcept("*")
	info, err := s.client.PutObject(ctx, s.bucket, key, r, size, opts)
	if err != nil {
		if preconditionFailed(err) {
			return store.Info{}, fmt.Errorf("cannot put %q: %w", key, store.ErrExists)
		}
		return store.Info{}, fmt.Errorf("cannot put %q: %w", key, err)
	}
	if size >= 0 && info.Size != size {
		return store.Info{}, fmt.Errorf("cannot put %q: stored %d bytes, expected %d", key, info.Size, size)
	}
	return store.Info{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// Open starts a (ranged) GET and returns once the server has answered.
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, store.Info, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, store.Info{}, err
	}
	var opts minio.GetObjectOptions
	switch {
	case offset < 0:
		return nil, store.Info{}, fmt.Errorf("cannot open %q: negative offset %d", key, offset)
	case length == 0:
		return io.NopCloser(eofReader{}), store.Info{Key: key}, nil
	case length > 0:
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return nil, store.Info{}, fmt.Errorf("cannot open %q: %w", key, err)
		}
	case offset > 0:
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, store.Info{}, fmt.Errorf("cannot open %q: %w", key, err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return nil, store.Info{}, s.wrap("open", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, store.Info{}, s.wrap("open", key, err)
	}
	return obj, store.Info{Key: key, Size: st.Size, ModTime: st.LastModified}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Stat issues a HEAD request.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.Info{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return store.Info{}, s.wrap("stat", key, err)
	}
	return store.Info{Key: key, Size: st.Size, ModTime: st.LastModified}, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return fmt.Errorf("cannot delete %q: %w", key, err)
	}
	return nil
}

// List pages through ListObjectsV2 and stops after limit keys.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]store.Info, error) {
	if err := store.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when we stop early
	opts := minio.ListObjectsOptions{Prefix: prefix, StartAfter: startAfter, Recursive: true}
	if limit > 0 && limit < 1000 {
		opts.MaxKeys = limit
	}
	var infos []store.Info
	for obj := range s.client.ListObjects(ctx, s.bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("cannot list %q: %w", prefix, obj.Err)
		}
		infos = append(infos, store.Info{Key: obj.Key, Size: obj.Size, ModTime: obj.LastModified})
		if limit > 0 && len(infos) == limit {
			break
		}
	}
	return infos, nil
}

func (s *Store) wrap(op, key string, err error) error {
	if notFound(err) {
		return fmt.Errorf("cannot %s %q: %w", op, key, store.ErrNotFound)
	}
	return fmt.Errorf("cannot %s %q: %w", op, key, err)
}

func notFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound
}

// preconditionFailed reports a lost If-None-Match race. Servers answer 412,
// or 409 when two conditional writes to one key overlap.
func preconditionFailed(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusPreconditionFailed ||
		resp.Code == "PreconditionFailed" || resp.Code == "ConditionalRequestConflict"
}

// countingTransport counts the requests sent to S3 by method, and the
// bytes of the answers' bodies (what S3 bills as requests and egress):
// store_s3_requests_total and store_s3_response_bytes_total.
type countingTransport struct{ next http.RoundTripper }

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	metrics.GetOrCreateCounter(`store_s3_requests_total{method="` + req.Method + `"}`).Inc()
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.Body != nil {
		resp.Body = &countedBody{ReadCloser: resp.Body}
	}
	return resp, err
}

var s3ResponseBytes = metrics.NewCounter(`store_s3_response_bytes_total`)

type countedBody struct{ io.ReadCloser }

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	s3ResponseBytes.Add(n)
	return n, err
}
