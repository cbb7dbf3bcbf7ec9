// Package registrytest starts registries for tests, with one token per
// role: in process (the registry and admin API behind httptest) or the
// real registry binary on a directory or an S3 bucket, optionally
// registered in Consul. Publish uploads and creates a version in one call.
package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store"
)

// The tokens every test registry accepts, one per role.
const (
	AdminToken     = "admin-token-0123456789"
	PublisherToken = "publisher-token-0123456789"
	ReaderToken    = "reader-token-0123456789"
	Tokens         = "admin:alice:" + AdminToken + ",publisher:ml-team:" + PublisherToken + ",reader:edge:" + ReaderToken
)

// Server is a running test registry and a client per role.
type Server struct {
	URL                      string
	Admin, Publisher, Reader *regclient.Client
	// In process only: the registry and its API.
	Registry *registry.Registry
	API      *registry.API
	// Binary only: the registry process.
	Proc *testenv.Process
}

func newServer(url string) *Server {
	client := func(token string) *regclient.Client { return &regclient.Client{BaseURL: url, Token: token} }
	return &Server{URL: url, Admin: client(AdminToken), Publisher: client(PublisherToken), Reader: client(ReaderToken)}
}

// QuietLogger keeps request logs out of test output.
var QuietLogger = slog.New(slog.NewJSONHandler(io.Discard, nil))

// Start runs a registry with the admin API in process over st, with cfg
// (its Store and, when unset, Logger are filled in), until the test ends.
func Start(t testing.TB, st store.Store, cfg registry.Config, adminCfg admin.Config) *Server {
	t.Helper()
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = QuietLogger
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := registry.ParseTokens(Tokens)
	if err != nil {
		t.Fatal(err)
	}
	api := registry.NewAPI(reg, tokens, cfg.Logger)
	admin.Mount(api, adminCfg)
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	s := newServer(hs.URL)
	s.Registry, s.API = reg, api
	return s
}

// Binary says how to run the registry binary.
type Binary struct {
	// Addr is the listen address (default: a free loopback port).
	Addr string
	// S3 and Bucket select an S3 store; without them the store is the
	// directory Dir (default: a fresh one).
	S3     *testenv.S3Server
	Bucket string
	Dir    string
	// Consul is the address of the agent to register with (none if empty).
	Consul string
	// Args are further flags.
	Args []string
}

// StartBinary runs the registry binary until the test ends and waits for
// its readiness.
func StartBinary(t testing.TB, b Binary) *Server {
	t.Helper()
	if b.Addr == "" {
		ports, err := testenv.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		b.Addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	}
	args := []string{"-listen", b.Addr, "-shutdown-delay", "0s"}
	env := []string{"REGISTRY_TOKENS=" + Tokens}
	if b.S3 != nil {
		args = append(args, "-store", "s3://"+b.Bucket, "-s3-endpoint", b.S3.Endpoint())
		env = append(env, "REGISTRY_S3_ACCESS_KEY="+b.S3.AccessKey, "REGISTRY_S3_SECRET_KEY="+b.S3.SecretKey)
	} else {
		if b.Dir == "" {
			b.Dir = t.TempDir()
		}
		args = append(args, "-store", "dir:"+b.Dir)
	}
	if b.Consul != "" {
		args = append(args, "-consul", b.Consul)
	}
	args = append(args, b.Args...)
	url := "http://" + b.Addr
	proc := testenv.StartHTTPService(t, "registry", testenv.GoBinary(t, "./cmd/registry"), args, env, url+"/health/ready")
	s := newServer(url)
	s.Proc = proc
	return s
}

// Publish uploads data and creates model/version through c, failing the
// test on an error.
func Publish(t testing.TB, c *regclient.Client, model, version string, data []byte) wire.Version {
	t.Helper()
	v, err := c.Publish(context.Background(), model, version, bytes.NewReader(data), int64(len(data)),
		wire.NewVersion{Description: "test " + version})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
