package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry"
)

// bigArtifact streams a valid artifact with 2^bits zero weights without
// holding it: prefix, header, weights, bias, then the SHA-256 trailer.
type bigArtifact struct {
	head    []byte // prefix + header
	weights int64  // weight + bias bytes still to send
	sum     hash.Hash
	trailer []byte
	pos     int
	delay   time.Duration // per 1 MiB, to make an upload slow
	sent    int64
}

func newBigArtifact(t testing.TB, bits int) *bigArtifact {
	md := model.Metadata{Name: "big", Labels: []string{"negative", "positive"},
		Features: model.Features{HashBits: bits, NGrams: 2, Negation: true, Norm: model.NormNone}}
	header, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	head := append([]byte(model.Magic), 1, 0, 0, 0)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(header)))
	head = append(head, header...)
	return &bigArtifact{head: head, weights: 4<<bits + 4, sum: sha256.New()}
}

func (b *bigArtifact) size() int64 { return int64(len(b.head)) + b.weights + 32 }

func (b *bigArtifact) Read(p []byte) (int, error) {
	if b.delay > 0 && b.sent>>20 != (b.sent+int64(len(p)))>>20 {
		time.Sleep(b.delay)
	}
	n := 0
	switch {
	case b.pos < len(b.head):
		n = copy(p, b.head[b.pos:])
		b.pos += n
	case b.weights > 0:
		n = int(min(int64(len(p)), b.weights))
		clear(p[:n])
		b.weights -= int64(n)
	default:
		if b.trailer == nil {
			b.trailer = b.sum.Sum(nil)
		}
		if len(b.trailer) == 0 {
			return 0, io.EOF
		}
		n = copy(p, b.trailer)
		b.trailer = b.trailer[n:]
		b.sent += int64(n)
		return n, nil
	}
	b.sum.Write(p[:n])
	b.sent += int64(n)
	return n, nil
}

// digestOf streams a fresh copy once to learn its digest.
func digestOf(t testing.TB, bits int) string {
	h := sha256.New()
	if _, err := io.Copy(h, newBigArtifact(t, bits)); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// TestLargePublishMemory publishes a 256 MiB artifact through the real
// registry binary and checks its peak RSS growth.
func TestLargePublishMemory(t *testing.T) {
	srv := sharedS3(t)
	bucket := testenv.NewBucket(t, srv, "large")
	reg := registrytest.StartBinary(t, registrytest.Binary{S3: srv, Bucket: bucket})
	proc := reg.Proc

	const bits = 26 // 256 MiB of weights
	digest := digestOf(t, bits)
	art := newBigArtifact(t, bits)
	size := art.size()
	before, err := testenv.ProcStatus(proc.PID(), "VmRSS:")
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.ResetPeakRSS(proc.PID()); err != nil {
		t.Fatal(err)
	}
	c := reg.Publisher
	start := time.Now()
	blob, err := c.PutBlob(context.Background(), digest, art, size)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	peak, err := testenv.ProcStatus(proc.PID(), "VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	growth := peak - before
	t.Logf("published %d MiB in %v (%.0f MiB/s); registry RSS %d MiB before, peak %d MiB: growth %d MiB (limit 64)",
		blob.Size>>20, elapsed.Round(time.Millisecond), float64(blob.Size>>20)/elapsed.Seconds(), before>>20, peak>>20, growth>>20)
	if blob.Size != size {
		t.Fatalf("stored %d bytes, sent %d", blob.Size, size)
	}
	if growth > 64<<20 {
		t.Fatalf("registry RSS grew by %d MiB during a 256 MiB publish, limit 64", growth>>20)
	}
	v, err := c.CreateVersion(context.Background(), "big", "v1", wire.NewVersion{Digest: digest})
	if err != nil || v.Artifact.Features.HashBits != bits {
		t.Fatalf("version of the large artifact: %+v, %v", v, err)
	}
}

// TestS3DiesMidUpload kills the S3 server while an artifact streams in:
// the client gets an error and nothing half-published is visible after
// S3 comes back.
func TestS3DiesMidUpload(t *testing.T) {
	srv := testenv.S3(t) // its own server: this test kills it
	bucket := testenv.NewBucket(t, srv, "kill")
	h := newReplica(t, srv, bucket, registry.Config{})
	const bits = 24 // 64 MiB: several multipart parts
	digest := digestOf(t, bits)
	art := newBigArtifact(t, bits)
	art.delay = 20 * time.Millisecond // ~1.3 s for the whole upload
	go func() {
		for art.sent < 20<<20 {
			time.Sleep(5 * time.Millisecond)
		}
		srv.Process().Kill()
	}()
	_, err := h.pub.PutBlob(context.Background(), digest, art, art.size())
	if err == nil {
		t.Fatal("upload succeeded although S3 died midway")
	}
	t.Logf("client error after %d MiB sent: %v", art.sent>>20, err)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := h.reg.StatBlob(ctx, digest); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("blob after the failed upload: %v, want not found", err)
	}
	if _, err := h.reader.GetVersion(ctx, "big", "v1"); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("version after the failed upload: %v", err)
	}
	objs, err := h.store.List(ctx, "", "", 0)
	if err != nil || len(objs) != 0 {
		t.Fatalf("bucket after the failed upload holds %v (%v)", objs, err)
	}
	// Publishing again works: no orphan trips it.
	art = newBigArtifact(t, bits)
	if _, err := h.pub.PutBlob(ctx, digest, art, art.size()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pub.CreateVersion(ctx, "big", "v1", wire.NewVersion{Digest: digest}); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryRegistersInConsul runs the registry binary against real
// Consul and S3: its check passes, turns critical when S3 stops, and the
// instance is gone after a graceful shutdown.
func TestRegistryRegistersInConsul(t *testing.T) {
	consul := testenv.Consul(t, "dc-us")
	agent := consul.Agent("dc-us")
	srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, srv, "consul")
	proc := registrytest.StartBinary(t, registrytest.Binary{S3: srv, Bucket: bucket, Consul: agent.HTTPAddr(),
		Args: []string{"-service-id", "registry-1", "-shutdown-delay", "1s"}}).Proc
	health := func() string {
		checks, _, err := agent.Client().Health().Checks("sentiment-registry", nil)
		if err != nil || len(checks) == 0 {
			return "absent"
		}
		return checks.AggregatedStatus()
	}
	waitFor := func(want string, within time.Duration) time.Duration {
		t.Helper()
		return testenv.Eventually(t, within, "registry check "+want, func() error {
			if got := health(); got != want {
				return fmt.Errorf("is %s; log:\n%s", got, proc.LogTail(2000))
			}
			return nil
		})
	}
	waitFor("passing", 10*time.Second)
	srv.Stop()
	took := waitFor("critical", 10*time.Second)
	t.Logf("registry check critical %v after S3 stopped", took.Round(time.Millisecond))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor("passing", 10*time.Second)
	// Readiness is JSON and says why it fails.
	proc.Stop(10 * time.Second)
	waitFor("absent", 10*time.Second)
}

// TestRegistryOutlivesItsConsulAgent runs the registry binary while its
// Consul agent is down at start, then restarts the agent (a dev agent
// forgets every registration): each time the registry registers itself
// again and its check passes, without a restart of its own.
func TestRegistryOutlivesItsConsulAgent(t *testing.T) {
	consul := testenv.Consul(t, "dc-us")
	agent := consul.Agent("dc-us")
	agent.Process().Stop(5 * time.Second)
	proc := registrytest.StartBinary(t, registrytest.Binary{Consul: agent.HTTPAddr(), Args: []string{"-service-id", "registry-1"}}).Proc
	passing := func() string {
		checks, _, err := agent.Client().Health().Checks("sentiment-registry", nil)
		if err != nil || len(checks) == 0 {
			return "absent"
		}
		return checks.AggregatedStatus()
	}
	for round := 1; round <= 2; round++ {
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for passing() != "passing" {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: registry not passing in consul 30s after the agent started (is %s); log:\n%s", round, passing(), proc.LogTail(2000))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !proc.Running() {
			t.Fatalf("round %d: the registry exited", round)
		}
		agent.Process().Stop(5 * time.Second)
	}
}

// TestAuthorizationMatrix calls every route with no token, a garbage token
// and each role: no route is reachable without its role.
func TestAuthorizationMatrix(t *testing.T) {
	h := newHarness(t)
	data := artifact(t, 1, 0.8)
	digest := model.Digest(data)
	publish(t, h.pub, "m", "v1", data)
	mustPromote(t, h.admin, "m", "staging", "v1")
	routes := []struct {
		method, path string
		need         registry.Role
	}{
		{"PUT", "/v1/blobs/" + digest, registry.RolePublisher},
		{"GET", "/v1/blobs/" + digest, registry.RoleReader},
		{"HEAD", "/v1/blobs/" + digest, registry.RoleReader},
		{"GET", "/v1/whoami", registry.RoleReader},
		{"GET", "/v1/models", registry.RoleReader},
		{"GET", "/v1/models/m/versions", registry.RoleReader},
		{"PUT", "/v1/models/m/versions/v1", registry.RolePublisher},
		{"GET", "/v1/models/m/versions/v1", registry.RoleReader},
		{"DELETE", "/v1/models/m/versions/v9", registry.RoleAdmin},
		{"PATCH", "/v1/models/m/versions/v1", registry.RolePublisher},
		{"GET", "/v1/models/m/versions/v1/artifact", registry.RoleReader},
		{"HEAD", "/v1/models/m/versions/v1/artifact", registry.RoleReader},
		{"GET", "/v1/models/m/channels", registry.RoleReader},
		{"GET", "/v1/models/m/channels/staging", registry.RoleReader},
		{"GET", "/v1/models/m/channels/staging/resolve", registry.RoleReader},
		{"POST", "/v1/admin/models/m/channels/staging/promote", registry.RolePublisher},
		{"POST", "/v1/admin/models/m/channels/staging/rollback", registry.RolePublisher},
		{"POST", "/v1/admin/models/m/channels/production/promote", registry.RoleAdmin},
		{"POST", "/v1/admin/models/m/channels/production/rollback", registry.RoleAdmin},
		{"GET", "/v1/admin/models/m/channels/staging/history", registry.RoleReader},
		{"GET", "/v1/admin/models/m/status", registry.RoleReader},
		{"GET", "/v1/admin/audit", registry.RoleAdmin},
		{"PUT", "/v1/admin/models/m/channels/staging/candidates/eu-west", registry.RoleAdmin},
		{"DELETE", "/v1/admin/models/m/channels/staging/candidates/eu-west", registry.RoleAdmin},
		{"POST", "/v1/admin/models/m/channels/staging/rollout", registry.RoleAdmin},
		{"GET", "/v1/admin/models/m/channels/staging/rollout", registry.RoleReader},
		{"POST", "/v1/admin/models/m/channels/staging/rollout/pause", registry.RoleAdmin},
		{"POST", "/v1/admin/models/m/channels/staging/rollout/resume", registry.RoleAdmin},
		{"POST", "/v1/admin/models/m/channels/staging/rollout/abort", registry.RoleAdmin},
		{"GET", "/v1/admin/rollouts", registry.RoleReader},
		{"POST", "/v1/admin/webhooks", registry.RoleAdmin},
		{"GET", "/v1/admin/webhooks", registry.RoleAdmin},
		{"DELETE", "/v1/admin/webhooks/wh_1", registry.RoleAdmin},
		{"POST", "/v1/admin/webhooks/wh_1/enable", registry.RoleAdmin},
		{"POST", "/v1/admin/webhooks/wh_1/rotate-secret", registry.RoleAdmin},
		{"GET", "/v1/admin/webhooks/wh_1/deliveries", registry.RoleAdmin},
		{"POST", "/v1/admin/webhooks/wh_1/deliveries/msg_1/redeliver", registry.RoleAdmin},
	}
	// Every route the API mounts is in the matrix: a new route cannot be
	// added without being checked here.
	mux := http.NewServeMux()
	for _, p := range h.api.Routes() {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	covered := map[string]bool{}
	for _, rt := range routes {
		req, _ := http.NewRequest(rt.method, rt.path, nil)
		_, pattern := mux.Handler(req)
		covered[pattern] = true
	}
	for _, p := range h.api.Routes() {
		if !covered[p] {
			t.Errorf("route %q is mounted but missing from the authorisation matrix", p)
		}
	}
	if len(h.api.Routes()) < 15 {
		t.Errorf("only %d routes mounted", len(h.api.Routes()))
	}
	tokens := map[registry.Role]string{registry.RoleReader: readerToken, registry.RolePublisher: publisherToken, registry.RoleAdmin: adminToken}
	call := func(method, path, token string) int {
		var body io.Reader
		if method == "PUT" && strings.HasPrefix(path, "/v1/blobs/") {
			body = bytes.NewReader(data)
		} else if method == "PUT" || method == "POST" {
			body = strings.NewReader(`{"digest":"` + digest + `","version":"v1"}`)
		}
		req, _ := http.NewRequest(method, h.url+path, body)
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Anonymous refusals are audited at up to 10 a second (bursts of
	// 100); the rest are counted as dropped.
	dropped := metrics.GetOrCreateCounter(`registry_audit_anonymous_denials_dropped_total`)
	droppedBefore := dropped.Get()
	denied := 0
	for _, rt := range routes {
		for _, bad := range []string{"", "Bearer ", "Bearer garbage-token-0000000000", "Basic " + adminToken, adminToken} {
			if code := call(rt.method, rt.path, bad); code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d, want 401", rt.method, rt.path, bad, code)
			}
			denied++
		}
		for role := registry.RoleReader; role <= registry.RoleAdmin; role++ {
			code := call(rt.method, rt.path, "Bearer "+tokens[role])
			if role < rt.need && code != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403", rt.method, rt.path, role, code)
			}
			if role < rt.need {
				denied++
			}
			if role >= rt.need && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
				t.Errorf("%s %s as %s: %d, want access", rt.method, rt.path, role, code)
			}
		}
	}
	// The scheme is case-insensitive and may be followed by several
	// spaces (RFC 9110 §11.4); a 401 carries a Bearer challenge (§11.6.1).
	for _, scheme := range []string{"bearer ", "BEARER   "} {
		if code := call("GET", "/v1/admin/audit", scheme+adminToken); code != 200 {
			t.Errorf("GET /v1/admin/audit with Authorization %q: %d, want 200", scheme+"…", code)
		}
	}
	resp, err := http.Get(h.url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if challenge := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(challenge, "Bearer ") {
		t.Errorf("GET /v1/models without a token: %d, WWW-Authenticate %q; want 401 with a Bearer challenge", resp.StatusCode, challenge)
	}
	// Health and metrics need no token.
	for _, p := range []string{"/health/live", "/health/ready", "/metrics"} {
		if code := call("GET", p, ""); code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	entries, err := h.reg.QueryAudit(context.Background(), registry.AuditQuery{Action: "auth_denied", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	sampledOut := int(dropped.Get() - droppedBefore)
	t.Logf("%d routes, %d refused calls, %d auth_denied audit entries, %d anonymous refusals sampled out", len(routes), denied, len(entries), sampledOut)
	// Publisher promoting production is refused by the admin layer
	// (audited as a denied promote), the rest by the API layer.
	if len(entries)+sampledOut+2 < denied-2 {
		t.Errorf("only %d of %d refusals audited", len(entries), denied)
	}
}

// TestStalledBodies: the registry binary cuts off a request body that
// stops coming (408, nothing stored) and answers a request it refuses
// before reading the body at once, closing the connection, however the
// client trickles the rest.
func TestStalledBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the registry binary")
	}
	reg := registrytest.StartBinary(t, registrytest.Binary{Args: []string{"-body-idle-timeout", "1s"}})
	data := testenv.TinyArtifact(t, 7, 0.8)
	digest := model.Digest(data)
	publisher := "Authorization: Bearer " + registrytest.PublisherToken + "\r\n"
	if status, closed := stall(t, reg.URL, "PUT /v1/blobs/"+digest, publisher, len(data), data[:len(data)/2]); !strings.HasPrefix(status, "408") || !closed {
		t.Errorf("a stalled upload: %s, close %v; want 408 closing the connection", status, closed)
	}
	req, _ := http.NewRequest("GET", reg.URL+"/v1/blobs/"+digest, nil)
	req.Header.Set("Authorization", "Bearer "+registrytest.ReaderToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Errorf("the stalled upload left a blob: %v %v", resp, err)
	}
	if status, _ := stall(t, reg.URL, "PUT /v1/models/m/versions/v1", publisher, 200, []byte(`{"digest": "`)); !strings.HasPrefix(status, "408") {
		t.Errorf("a stalled JSON body: %s, want 408", status)
	}
	// Without a token: 401 at once, with ten minutes' idle time that is
	// not waited for.
	patient := registrytest.StartBinary(t, registrytest.Binary{Args: []string{"-body-idle-timeout", "10m"}})
	if status, closed := stall(t, patient.URL, "PUT /v1/blobs/"+digest, "", len(data), data[:10]); !strings.HasPrefix(status, "401") || !closed {
		t.Errorf("an upload without a token: %s, close %v; want 401 closing the connection", status, closed)
	}
}

// stall sends a request line, headers (each ending in CRLF) and the first
// bytes of a body of length bytes, and no more; it returns the answer's
// status and whether the answer closes the connection.
func stall(t *testing.T, base, requestLine, headers string, length int, first []byte) (status string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: registry\r\n%sContent-Length: %d\r\n\r\n%s", requestLine, headers, length, first)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", requestLine, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Status, resp.Close
}
