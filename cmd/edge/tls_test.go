package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/oippb"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// TestTLS runs the edge binary with -tls-cert and -tls-key and predicts
// over HTTPS with a client that trusts only the test's certificate.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge binary")
	}
	dir := t.TempDir()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(testenv.WriteCert(t, dir, "edge test"))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	addr := testenv.StartEdge(t, testenv.Edge{Name: "edge", CacheDir: dir,
		TLS: &testenv.TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Client: client}}).Addr
	resp, err := client.Post("https://"+addr+"/v1/predict", "application/json", strings.NewReader(`{"text":"a wonderful film"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"label":"positive"`) {
		t.Fatalf("predict over HTTPS: %d %s", resp.StatusCode, body)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("no Strict-Transport-Security over HTTPS: %q", hsts)
	}
	// Plain HTTP on the TLS port is refused, not served.
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/health/live"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the TLS listener answered plain HTTP with 200")
		}
	}
}

// TestTLSToRegistry runs the registry binary over TLS and an edge that
// follows it with -tls-ca: the edge loads the promoted model over
// TLS; plain HTTP on the registry's port is not served; and a rotated
// registry certificate is served to new connections without a restart.
func TestTLSToRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry and edge binaries")
	}
	dir := t.TempDir()
	caPEM := testenv.WriteCert(t, dir, "registry one")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	regAddr, edgeAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	reg := &testenv.Process{Name: "registry", Path: testenv.GoBinary(t, "./cmd/registry"), LogPath: filepath.Join(dir, "registry.log"),
		Args: []string{"-listen", regAddr, "-store", "dir:" + filepath.Join(dir, "store"), "-shutdown-delay", "0s",
			"-tls-cert", filepath.Join(dir, "cert.pem"), "-tls-key", filepath.Join(dir, "key.pem")},
		Env: []string{"REGISTRY_TOKENS=" + registrytest.Tokens}}
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Stop(5 * time.Second) })
	trusting := func(caPEM []byte) *http.Client {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	client := trusting(caPEM)
	if err := reg.WaitFor(20*time.Second, func() error {
		resp, err := client.Get("https://" + regAddr + "/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	admin := &regclient.Client{BaseURL: "https://" + regAddr, Token: registrytest.AdminToken, HTTP: client}
	registrytest.Publish(t, admin, "sentiment", "v1", testenv.TinyArtifact(t, 1, 0))
	if _, err := admin.Promote(context.Background(), "sentiment", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	testenv.StartEdge(t, testenv.Edge{Name: "edge", Addr: edgeAddr, Registry: "https://" + regAddr, Token: registrytest.ReaderToken,
		CacheDir: filepath.Join(dir, "cache"), Args: []string{"-tls-ca", ca}})
	resp, err := http.Get("http://" + edgeAddr + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"version":"v1"`) {
		t.Fatalf("the edge does not serve v1 from the TLS registry: %s", body)
	}
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + regAddr + "/health/live"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the registry's TLS port answered plain HTTP with 200")
		}
	}
	rotated := testenv.WriteCert(t, dir, "registry two")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := trusting(rotated).Get("https://" + regAddr + "/health/live")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate is not served 10s after the files changed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGRPCMutualTLS runs the edge binary with mutual TLS and -grpc-listen:
// a call without a client certificate is PERMISSION_DENIED (reflection
// included), a health check needs none, and a call with the deployment's
// certificate is answered.
func TestGRPCMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge binary")
	}
	ca := testenv.NewCA(t)
	cert, key := testenv.IssueCert(t, ca, "edge")
	clientCert, clientKey := testenv.IssueCert(t, ca, "client")
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	testenv.StartEdge(t, testenv.Edge{Name: "edge", Args: []string{"-grpc-listen", grpcAddr},
		TLS: &testenv.TLSFiles{Cert: cert, Key: key, ClientCA: ca.CertFile(), Client: testenv.TLSClient(t, ca, clientCert, clientKey)}})
	dial := func(withCert bool) *grpc.ClientConn {
		c, k := "", ""
		if withCert {
			c, k = clientCert, clientKey
		}
		cfg, err := tlsfiles.ClientConfig(ca.CertFile(), c, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	anonymous := dial(false)
	if _, err := oippb.NewGRPCInferenceServiceClient(anonymous).ServerReady(ctx, &oippb.ServerReadyRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a call without a client certificate: %v, want PERMISSION_DENIED", err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(anonymous).ServerReflectionInfo(ctx)
	if err == nil {
		stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("reflection without a client certificate: %v, want PERMISSION_DENIED", err)
	}
	if r, err := healthpb.NewHealthClient(anonymous).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("a health check without a client certificate: %v %v, want SERVING", r, err)
	}
	if r, err := oippb.NewGRPCInferenceServiceClient(dial(true)).ServerReady(ctx, &oippb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("a call with the deployment's certificate: %v %v", r, err)
	}
}
