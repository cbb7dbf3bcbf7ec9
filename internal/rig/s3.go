package rig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sentimentpro/sentiment/store/s3"
)

// S3Server is a versitygw process serving the S3 API from a directory.
type S3Server struct {
	Port      int
	AccessKey string
	SecretKey string
	proc      *Process
	buckets   atomic.Int64
}

// Endpoint is the server's host:port.
func (s *S3Server) Endpoint() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Process gives access to the server process (stop, kill, pause, restart).
func (s *S3Server) Process() *Process { return s.proc }

// StartS3 starts versitygw with its data under dir and waits for its health
// endpoint. Callers must Stop it.
func StartS3(dir string) (*S3Server, error) {
	bin, err := Binary("versitygw", "SAP_VERSITYGW_BIN")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, versions := filepath.Join(dir, "s3-data"), filepath.Join(dir, "s3-versions")
	for _, d := range []string{data, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", d, err)
		}
	}
	s := &S3Server{Port: ports[0], AccessKey: "test-access-key", SecretKey: randomHex(16)}
	s.proc = &Process{
		Name: "versitygw",
		Path: bin,
		Args: []string{
			"--port", s.Endpoint(), "--health", "/health",
			"posix", "--versioning-dir", versions, data,
		},
		Env:     []string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey},
		LogPath: filepath.Join(dir, "versitygw.log"),
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start (re)starts the server on its port and data directory.
func (s *S3Server) Start() error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return s.proc.WaitFor(30*time.Second, func() error {
		resp, err := client.Get("http://" + s.Endpoint() + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
}

// Stop stops the server.
func (s *S3Server) Stop() { s.proc.Stop(5 * time.Second) }

// Config returns an s3.Config for bucket on this server.
func (s *S3Server) Config(bucket string) s3.Config {
	return s3.Config{Endpoint: s.Endpoint(), AccessKey: s.AccessKey, SecretKey: s.SecretKey, Bucket: bucket}
}

// NewBucket creates a fresh, uniquely named bucket and returns its name.
func (s *S3Server) NewBucket(ctx context.Context, prefix string) (string, error) {
	name := fmt.Sprintf("%s-%d-%s", strings.ToLower(prefix), s.buckets.Add(1), randomHex(4))
	return name, s.EnsureBucket(ctx, name)
}

// EnsureBucket creates bucket if it does not exist.
func (s *S3Server) EnsureBucket(ctx context.Context, bucket string) error {
	st, err := s3.New(s.Config(bucket))
	if err != nil {
		return err
	}
	if err := st.EnsureBucket(ctx); err != nil {
		return fmt.Errorf("cannot create bucket %s: %w", bucket, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
