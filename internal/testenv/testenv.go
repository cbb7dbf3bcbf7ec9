// Package testenv ties the real services of internal/rig to tests: Consul
// agents (one per datacenter, joined over WAN), the S3-compatible server
// (versitygw) and this module's binaries start for a test and stop by PID
// in its Cleanup.
//
// The binaries are built by `make tools` into a per-user cache (see
// docs/TESTING.md). Tests that need them call Consul(t, ...) or S3(t); in
// -short mode those calls skip the test, and otherwise a missing binary fails
// it, so CI can never pass without the real services.
package testenv

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/store/s3"
)

// The rig's types, as tests name them.
type (
	Process       = rig.Process
	ConsulAgent   = rig.ConsulAgent
	ConsulCluster = rig.ConsulCluster
	S3Server      = rig.S3Server
)

// FreePorts returns n distinct free TCP (and UDP) ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) { return rig.FreePorts(n) }

// Consul starts one agent per datacenter for the test and stops them in
// t.Cleanup. It skips the test in -short mode.
func Consul(t testing.TB, dcs ...string) *ConsulCluster {
	t.Helper()
	skipShort(t)
	c, err := rig.StartConsul(t.TempDir(), dcs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// S3 starts an S3 server for the test and stops it in t.Cleanup. It skips
// the test in -short mode.
func S3(t testing.TB) *S3Server {
	t.Helper()
	skipShort(t)
	s, err := rig.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewBucket creates a fresh bucket on s for the test and returns its name.
func NewBucket(t testing.TB, s *S3Server, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name, err := s.NewBucket(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// NewStore returns an s3.Store on a fresh bucket of s.
func NewStore(t testing.TB, s *S3Server) *s3.Store {
	t.Helper()
	st, err := s3.New(s.Config(NewBucket(t, s, "test")))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// StartHTTPService starts bin as a child process for the test, waits until
// GET readyURL answers 200, and stops it in t.Cleanup.
func StartHTTPService(t testing.TB, name, bin string, args, env []string, readyURL string) *Process {
	t.Helper()
	return StartTLSService(t, name, bin, args, env, readyURL, nil)
}

// StartTLSService is StartHTTPService with the readiness client given: one
// that trusts the service's CA for an https readyURL.
func StartTLSService(t testing.TB, name, bin string, args, env []string, readyURL string, client *http.Client) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".log")
	p, err := rig.StartHTTPService(name, bin, args, env, logPath, readyURL, client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(10 * time.Second) })
	return p
}

// skipShort skips t in -short mode; real-service tests run everywhere else.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-service test: skipped in -short mode")
	}
}

// GeoIPDatabase returns the path of the DB-IP country database that
// `make geoip` leaves in the cache (or $SAP_GEOIP_MMDB). It skips t in
// -short mode and fails it when the file is missing.
func GeoIPDatabase(t testing.TB) string {
	t.Helper()
	return cachedFile(t, "SAP_GEOIP_MMDB", "geoip/dbip-country.mmdb", "make geoip")
}

// ONNXRuntime is the path of ONNX Runtime's C library for tests that run
// ONNX models: $SAP_ONNXRUNTIME_LIB, or where `make onnxruntime` (run by
// `make test`) caches it. It skips t in -short mode and fails it when the
// library is missing.
func ONNXRuntime(t testing.TB) string {
	t.Helper()
	return cachedFile(t, "SAP_ONNXRUNTIME_LIB", "onnxruntime/libonnxruntime.so.1", "make onnxruntime")
}

// TokenizerReference is the directory `make tokenizer-reference` fills
// (or the directory of $SAP_TOKENIZER_REFERENCE, a tokenizers.mjs): Hugging Face's pure-JS tokenizers
// (tokenizers.mjs, run with node) and GPT-2's tokenizer files (gpt2/). It
// skips t in -short mode and fails it when they are missing.
func TokenizerReference(t testing.TB) string {
	t.Helper()
	return filepath.Dir(cachedFile(t, "SAP_TOKENIZER_REFERENCE", "tokenizer-reference/tokenizers.mjs", "make tokenizer-reference"))
}

// cachedFile is the path in envVar, else rel under the tools' cache
// (beside rig.CacheDir), where the make target fetch leaves it.
func cachedFile(t testing.TB, envVar, rel, fetch string) string {
	t.Helper()
	skipShort(t)
	p := os.Getenv(envVar)
	if p == "" {
		p = filepath.Join(filepath.Dir(rig.CacheDir()), filepath.FromSlash(rel))
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("cannot use %s: %v; run `%s` or set %s", rel, err, fetch, envVar)
	}
	return p
}
