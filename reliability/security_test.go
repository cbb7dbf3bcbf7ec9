package reliability

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestSecurityFindings replays, against the real binaries, the findings
// of issue #13 and shows each now fails, with figures in the report:
// 1 audit poisoning, 5 unsigned publish, 7 watchers, 8 reused names
// (registryFindings); 2 memory under idle announcements (frontDoorHolds);
// 3 plain hops and 10 open internals (tlsFindings); 4 the per-client limit
// (perClientLimit); 6 raw buffers in logs (checkLogs); 9 hop-by-hop
// headers (hopByHopStops). Finding 11 (peers forward X-Forwarded-For, over
// mutual TLS) is edge.TestPeerFallback, which needs Consul.
func TestSecurityFindings(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	var s services
	addrs := freeAddrs(t, 7)
	edgeAddr, geoAddr, proxiedGeoAddr, regAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	s.edge(t, "us-east", edgeAddr)
	static := "us-east=" + edgeAddr + ",eu-west=" + edgeAddr + ",ap-south=" + edgeAddr
	// Both routers keep the seed's 100 requests a minute per client; the
	// second sits behind a trusted proxy (this machine).
	geo := s.geo(t, geoAddr, static, 300*time.Millisecond, "-rate-limit", "100", "-max-conns-per-ip", "256")
	s.geo(t, proxiedGeoAddr, static, 300*time.Millisecond, "-rate-limit", "100", "-trusted-proxies", "127.0.0.1/32")

	grown := frontDoorHolds(t, geo, geoAddr)
	one, hopping := perClientLimit(t, geoAddr, proxiedGeoAddr)
	entries := registryFindings(t, &s, regAddr)
	tlsFindings(t, &s, addrs[4], addrs[5])
	hopByHopStops(t, &s, addrs[6])
	report(row{scenario: "security findings (#13)", offered: "100 idle conns; 130 req at once ×2", requests: 261,
		memGrowth: fmt.Sprintf("geo %+.1f MiB under 100 idle 64 KiB announcements", mib(grown)),
		note: "first 429 at " + strconv.Itoa(one) + " (one client), " + strconv.Itoa(hopping) + " (hopping X-Region); " +
			strconv.Itoa(entries) + " audit entries readable after a 66,000-character name; unsigned publish, unknown watch, reused name refused; " +
			"plain HTTP refused on every TLS port; internals need the token; hop-by-hop headers stopped"})
	s.checkLogs(t, registrytest.AdminToken, registrytest.PublisherToken)
}

// frontDoorHolds opens 100 idle connections announcing the largest body
// (finding 2) and returns the router's RSS growth; then checks the body
// and per-address connection caps.
func frontDoorHolds(t *testing.T, geo *testenv.Process, geoAddr string) int64 {
	t.Helper()
	before := rss(t, geo)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", geoAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(dial(), "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 64<<10)
	}
	// The full-length run holds them past the router's 10 s read timeout,
	// taking the peak, and checks the router cut every one of them off.
	hold := 2 * time.Second
	if *full {
		hold = 15 * time.Second
	}
	var grown int64
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		grown = max(grown, rss(t, geo)-before)
	}
	if grown > 16<<20 {
		t.Errorf("geo RSS grew %.1f MiB under 100 idle connections announcing 64 KiB bodies (limit 16 MiB)", mib(grown))
	}
	if *full {
		open := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := io.ReadAll(c); err != nil { // a timeout: still open
				open++
			}
		}
		if open > 0 {
			t.Errorf("%d of 100 idle connections still open after %v (read timeout 10 s)", open, hold)
		}
	}
	// Up to 256 connections per client address: the 257th is turned away.
	// (Fresh ones: the full-length run's first 100 were cut off.)
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for len(conns) < 256 {
		dial()
	}
	time.Sleep(200 * time.Millisecond) // the server counts a connection once it accepted it
	if code, body, err := sendRaw("http://"+geoAddr, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || code != http.StatusTooManyRequests {
		t.Errorf("connection 257 from one address: %d %q %v, want 429", code, body, err)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	code, _ := send(t, "http://"+geoAddr, errorCase{raw: "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"})
	if code != 413 {
		t.Errorf("a body over 64 KiB: %d, want 413", code)
	}
	return grown
}

// perClientLimit sends 130 requests at once from one client, straight and
// hopping regions behind a trusted proxy (finding 4), and returns where
// the first 429 came; a second client behind the proxy has its own
// allowance.
func perClientLimit(t *testing.T, geoAddr, proxiedGeoAddr string) (one, hopping int) {
	t.Helper()
	none := func(int) map[string]string { return nil }
	one = firstRefused(t, "http://"+geoAddr, 130, none)
	regions := []string{"us-east", "eu-west", "ap-south"}
	hopping = firstRefused(t, "http://"+proxiedGeoAddr, 130, func(i int) map[string]string {
		return map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Region": regions[i%3]}
	})
	other := firstRefused(t, "http://"+proxiedGeoAddr, 1, func(int) map[string]string {
		return map[string]string{"X-Forwarded-For": "198.51.100.9"}
	})
	for what, got := range map[string]int{"one client": one, "one client hopping regions": hopping} {
		if got < 95 || got > 106 {
			t.Errorf("%s, 130 requests at once: first 429 at request %d, want about the 101st", what, got)
		}
	}
	if other != 0 {
		t.Errorf("a second client behind the same proxy was refused at once: its allowance is its own")
	}
	return one, hopping
}

// firstRefused sends up to n predictions and returns the number of the
// first one answered 429 (0 if none was).
func firstRefused(t *testing.T, url string, n int, header func(i int) map[string]string) int {
	t.Helper()
	for i := 1; i <= n; i++ {
		req, _ := http.NewRequest("POST", url+"/v1/predict", strings.NewReader(`{"text":"`+marker+` fine"}`))
		for k, v := range header(i) {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			return i
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	return 0
}

// registryFindings runs the registry binary with a trusted key: an audit
// query after a 66,000-character name answers (finding 1), and an unsigned
// publish is refused (finding 5). It returns the audit entries read.
func registryFindings(t *testing.T, s *services, regAddr string) int {
	t.Helper()
	pub, priv, err := model.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(keys, model.MarshalPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.StartBinary(t, registrytest.Binary{Addr: regAddr, Args: []string{"-trusted-keys", keys}})
	defer watchesAndNames(t, reg, priv)
	s.procs = append(s.procs, reg.Proc)
	resp, err := http.Get(reg.URL + "/v1/models/" + strings.Repeat("a", 66000) + "/versions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx := context.Background()
	entries, err := reg.Admin.Audit(ctx, nil)
	if err != nil {
		t.Errorf("audit query after a 66,000-character name: %v, want 200", err)
	}
	data := testenv.TinyArtifact(t, 1, 0)
	_, err = reg.Publisher.Publish(ctx, "m", "v1", bytes.NewReader(data), int64(len(data)), wire.NewVersion{})
	if !regclient.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("unsigned publish with a trusted key configured: %v, want 422", err)
	}
	return len(entries)
}

// watchesAndNames: a watch of a channel that does not exist is refused
// (finding 7), and a deleted version's name cannot be published again
// with other bytes (finding 8).
func watchesAndNames(t *testing.T, reg *registrytest.Server, priv ed25519.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	if _, err := reg.Reader.Resolve(ctx, "m", "made-up", "", 1, time.Second); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Errorf("a watch of a made-up channel: %v, want 404", err)
	}
	publish := func(data []byte) error {
		digest := model.Digest(data)
		sig, err := model.Sign(priv, digest)
		if err != nil {
			t.Fatal(err)
		}
		_, err = reg.Publisher.Publish(ctx, "m", "v9", bytes.NewReader(data), int64(len(data)), wire.NewVersion{Digest: digest, Signature: &sig})
		return err
	}
	if err := publish(testenv.TinyArtifact(t, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Admin.Raw(ctx, http.MethodDelete, "/v1/models/m/versions/v9", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := publish(testenv.TinyArtifact(t, 0, 1)); !regclient.IsStatus(err, http.StatusConflict) {
		t.Errorf("a deleted version's name published again with other bytes: %v, want 409", err)
	}
}

// tlsFindings runs an edge serving mutual TLS and a router serving TLS in
// front of it, as make stack does (finding 3): predictions go through over
// TLS; neither port answers plain HTTP; the edge refuses a client without
// a certificate; and the router's /metrics and /v1/route need the internal
// token (finding 10).
func tlsFindings(t *testing.T, s *services, edgeAddr, geoAddr string) {
	t.Helper()
	ca := testenv.NewCA(t)
	edgeCert, edgeKey := testenv.IssueCert(t, ca, "edge")
	geoCert, geoKey := testenv.IssueCert(t, ca, "geo")
	withCert := testenv.TLSClient(t, ca, edgeCert, edgeKey)
	s.startEdge(t, testenv.Edge{Name: "edge-tls", Addr: edgeAddr, TLS: &testenv.TLSFiles{Cert: edgeCert, Key: edgeKey, ClientCA: ca.CertFile(), Client: withCert}})
	const internal = "internal-token-for-the-suite"
	s.startGeo(t, testenv.Geo{Name: "geo-tls", Addr: geoAddr, Static: "us-east=" + edgeAddr, WaitReady: true, Env: []string{"GEO_INTERNAL_TOKEN=" + internal},
		TLS:  &testenv.TLSFiles{Cert: geoCert, Key: geoKey, Client: withCert},
		Args: []string{"-edge-ca", ca.CertFile(), "-edge-cert", geoCert, "-edge-key", geoKey}})
	client := testenv.TLSClient(t, ca, "", "")
	resp, err := client.Post("https://"+geoAddr+"/v1/predict", "application/json", strings.NewReader(`{"text":"`+marker+` a wonderful film"}`))
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Served-Region") != "us-east" {
		t.Fatalf("predict through the TLS router to the mutual-TLS edge: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, addr := range []string{geoAddr, edgeAddr} {
		if code, body, err := sendRaw("http://"+addr, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err == nil && (code < 400 || strings.Contains(body, "status")) {
			t.Errorf("%s answered plain HTTP: %d %q", addr, code, body)
		}
	}
	if resp, err := client.Post("https://"+edgeAddr+"/v1/predict", "application/json", strings.NewReader(`{"text":"hi"}`)); err != nil || resp.StatusCode != 403 {
		t.Errorf("the edge, without a client certificate: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/metrics", "/v1/route"} {
		req, _ := http.NewRequest("GET", "https://"+geoAddr+path, nil)
		if resp, err := client.Do(req); err != nil || resp.StatusCode != 401 {
			t.Errorf("%s without the internal token: %v %v, want 401", path, resp, err)
		} else {
			resp.Body.Close()
		}
		req.Header.Set("Authorization", "Bearer "+internal)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || path == "/v1/route" && !strings.Contains(string(body), `"https://`+edgeAddr+`"`) {
			t.Errorf("%s with the internal token: %d %.200s", path, resp.StatusCode, body)
		}
	}
}

// hopByHopStops puts the real router in front of a server that records
// what reaches it (finding 9): no hop-by-hop header, none named in
// Connection, and no Proxy-Authorization is forwarded.
func hopByHopStops(t *testing.T, s *services, geoAddr string) {
	t.Helper()
	got := make(chan http.Header, 1)
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/predict" {
			select {
			case got <- r.Header.Clone():
			default:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer edge.Close()
	s.geo(t, geoAddr, "us-east="+strings.TrimPrefix(edge.URL, "http://"), 300*time.Millisecond)
	raw := "POST /v1/predict HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n" +
		"Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic " + marker + "\r\n" +
		"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"text\":\"hi\"}"
	if code, body, err := sendRaw("http://"+geoAddr, raw); err != nil || code != 200 {
		t.Fatalf("through the router: %d %q %v", code, body, err)
	}
	select {
	case h := <-got:
		for _, name := range []string{"X-Secret-Hop", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization"} {
			if v := h.Get(name); v != "" {
				t.Errorf("the router forwarded %s: %q", name, v)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the edge")
	}
}
