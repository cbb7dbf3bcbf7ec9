package edge_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestStaticStability runs the real binaries: an edge follows the registry
// (on S3) and registers in Consul; then registry, S3 and Consul all stop,
// and the edge keeps answering; restarted, it answers from its cache.
func TestStaticStability(t *testing.T) {
	consul := testenv.Consul(t, "dc-eu")
	agent := consul.Agent("dc-eu")
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "stability")
	ports, _ := testenv.FreePorts(2)
	regAddr, edgeAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	reg := registrytest.StartBinary(t, registrytest.Binary{Addr: regAddr, S3: s3srv, Bucket: bucket, Consul: agent.HTTPAddr()})
	regProc := reg.Proc
	r := &rig{admin: reg.Admin}
	r.publish(t, "v1", artifact(t, 1), nil)
	r.promote(t, "v1")

	cache := t.TempDir()
	edge := testenv.Edge{Name: "edge", Addr: edgeAddr, Region: "eu-west", Model: "demo", Registry: "http://" + regAddr,
		Token: registrytest.ReaderToken, CacheDir: cache, Consul: agent.HTTPAddr(), WaitLive: true, Args: []string{"-shutdown-delay", "200ms"}}
	edgeProc := testenv.StartEdge(t, edge)
	waitVersion(t, edgeAddr, "v1", 10*time.Second)

	// Consul sees the edge passing, with the version it serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, _, err := agent.Client().Health().Service("sentiment-edge", "", true, nil)
		if err == nil && len(entries) == 1 && entries[0].Service.Meta["model_version"] == "v1" && entries[0].Service.Meta["region"] == "eu-west" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge not passing in consul with model_version=v1: %v %v", entries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Rollout status, from what the edge reports in Consul.
	var st struct {
		Converged bool
		Regions   []struct {
			Region, Expected string
			Instances        []struct{ Version string }
		}
	}
	if err := r.admin.Raw(context.Background(), "GET", "/v1/admin/models/demo/status?channel=production", nil, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Converged || len(st.Regions) != 1 || st.Regions[0].Region != "eu-west" || st.Regions[0].Instances[0].Version != "v1" {
		t.Fatalf("rollout status %+v", st)
	}

	// Everything behind the edge goes away.
	regProc.Kill()
	s3srv.Process().Kill()
	agent.Process().Kill()
	ok, total := predictN(t, edgeAddr, 200)
	t.Logf("with registry, S3 and Consul down: %d/%d requests answered", ok, total)
	if ok != total {
		t.Fatalf("only %d of %d requests answered with the dependencies down", ok, total)
	}

	// Restart the edge: it serves from its cache at once.
	edgeProc.Stop(10 * time.Second)
	start := time.Now()
	edge.Name = "edge-restarted"
	testenv.StartEdge(t, edge)
	readyIn := waitVersion(t, edgeAddr, "v1", 5*time.Second)
	t.Logf("restarted edge ready with cached v1 %v after the process started (%v after live)", time.Since(start).Round(time.Millisecond), readyIn.Round(time.Millisecond))
	ok, total = predictN(t, edgeAddr, 200)
	if ok != total {
		t.Fatalf("restarted edge answered %d of %d", ok, total)
	}
	if _, err := os.Stat(cache + "/current-demo.json"); err != nil {
		t.Fatal(err)
	}
}

// waitVersion polls /health/ready until it reports version as the one
// served (not only the one loading).
func waitVersion(t *testing.T, addr, version string, within time.Duration) time.Duration {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	last := ""
	for time.Since(start) < within {
		resp, err := client.Get("http://" + addr + "/health/ready")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var ready struct{ Version string }
			if resp.StatusCode == 200 && json.Unmarshal(b, &ready) == nil && ready.Version == version {
				return time.Since(start)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("edge at %s not ready with %s within %v: %s", addr, version, within, last)
	return 0
}

func predictN(t *testing.T, addr string, n int) (ok, total int) {
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := client.Post("http://"+addr+"/v1/predict", "application/json", strings.NewReader(`{"text":"a great film"}`))
		total++
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			ok++
		}
	}
	return ok, total
}

// TestPeerFallback: an edge with no model at all (empty cache, registry
// unreachable) forwards predictions to a healthy edge in a peer region it
// finds in Consul, and says so. Both edges serve mutual TLS, as deployed:
// Consul's https checks pass them, the hop to the peer is TLS with the
// edge's certificate, and the peer limits the client the edge forwarded
// (X-Forwarded-For), not the edge.
func TestPeerFallback(t *testing.T) {
	consul := testenv.Consul(t, "dc-eu", "dc-us")
	ports, _ := testenv.FreePorts(3)
	usAddr, euAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	ca := testenv.NewCA(t)
	cert, key := testenv.IssueCert(t, ca, "client")
	client := testenv.TLSClient(t, ca, cert, key)
	mtls := func(name string) *testenv.TLSFiles {
		cert, key := testenv.IssueCert(t, ca, name)
		return &testenv.TLSFiles{Cert: cert, Key: key, ClientCA: ca.CertFile(), Client: client}
	}
	// A us-east edge serving the embedded default model, three requests a
	// minute per client, believing the edges' X-Forwarded-For.
	us := testenv.StartEdge(t, testenv.Edge{Name: "edge-us", Addr: usAddr, Consul: consul.Agent("dc-us").HTTPAddr(), RateLimit: 3,
		TrustedProxies: "127.0.0.1/32", TLS: mtls("edge-us"), Args: []string{"-access-log-sample", "1", "-tls-ca", ca.CertFile()}})
	// A cold eu-west edge: its registry does not answer, its cache is empty.
	testenv.StartEdge(t, testenv.Edge{Name: "edge-eu", Addr: euAddr, Region: "eu-west", Registry: fmt.Sprintf("https://127.0.0.1:%d", ports[2]),
		Consul: consul.Agent("dc-eu").HTTPAddr(), TrustedProxies: "127.0.0.1/32", TLS: mtls("edge-eu"), WaitLive: true,
		Args: []string{"-peers", "dc-us=us-east", "-tls-ca", ca.CertFile()}})
	if resp, err := client.Get("https://" + euAddr + "/health/ready"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("a cold edge must not be ready: %v %v", resp, err)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	predict := func(from string) (*http.Response, string, error) {
		req, _ := http.NewRequest("POST", "https://"+euAddr+"/v1/predict", strings.NewReader(`{"text":"a great film"}`))
		req.Header.Set("X-Forwarded-For", from)
		req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body), nil
	}
	// The us-east edge turns passing in Consul only through its https
	// check; until then there is no peer to forward to.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body, err := predict("203.0.113.7")
		if err == nil && resp.StatusCode == 200 && resp.Header.Get("X-Served-Region") == "us-east" && strings.Contains(body, `"region":"us-east"`) {
			t.Logf("cold eu-west edge forwarded to us-east over mutual TLS: %s", strings.TrimSpace(body))
			if !strings.Contains(resp.Header.Get("traceparent"), trace) {
				t.Errorf("the answer's traceparent %q is not of the request's trace", resp.Header.Get("traceparent"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cold edge never forwarded to its peer: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The trace reaches the peer, and comes back in the answer.
	if data, _ := os.ReadFile(us.LogPath); !strings.Contains(string(data), `"trace_id":"`+trace+`"`) {
		t.Errorf("the peer's log has no line with the forwarded trace")
	}
	// The client has two requests left at the peer, then 429; another
	// client behind the same edge still has its own three.
	codes := []int{}
	for i := 0; i < 3; i++ {
		resp, _, err := predict("203.0.113.7")
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("one client's requests 2-4 through the cold edge: %v, want [200 200 429]", codes)
	}
	if resp, _, _ := predict("203.0.113.7"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the peer's 429 came back as %d without its Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The Open Inference Protocol's binary tensor data extension crosses
	// the hop both ways: its JSON length is a header.
	inferBinaryThroughPeer(t, client, "https://"+euAddr, "198.51.100.20")
	if resp, body, err := predict("198.51.100.9"); err != nil || resp.StatusCode != 200 {
		t.Errorf("a second client was limited with the first (the peer saw the edge, not the clients): %v %s", err, body)
	}
	// A client without a certificate reaches nothing but health.
	plain := testenv.TLSClient(t, ca, "", "")
	if resp, err := plain.Post("https://"+usAddr+"/v1/predict", "application/json", strings.NewReader(`{"text":"hi"}`)); err != nil || resp.StatusCode != 403 {
		t.Errorf("a predict without a client certificate: %v %v, want 403", resp, err)
	}
}

// inferBinaryThroughPeer sends one Open Inference Protocol request in the
// binary tensor data extension, asking for binary outputs, to base as the
// client from, and checks the answer splits into its JSON and tensors.
func inferBinaryThroughPeer(t *testing.T, client *http.Client, base, from string) {
	t.Helper()
	text := "a great film"
	tensor := binary.LittleEndian.AppendUint32(nil, uint32(len(text)))
	tensor = append(tensor, text...)
	head := fmt.Sprintf(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":%d}}],`+
		`"parameters":{"binary_data_output":true}}`, len(tensor))
	req, _ := http.NewRequest("POST", base+"/v2/models/sentiment/infer", strings.NewReader(head+string(tensor)))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(head)))
	req.Header.Set("X-Forwarded-For", from)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Served-Region") == "" {
		t.Fatalf("binary infer through the cold edge: %d %q", resp.StatusCode, body)
	}
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if err != nil || n > len(body) {
		t.Fatalf("Inference-Header-Content-Length %q for a %d-byte answer", resp.Header.Get("Inference-Header-Content-Length"), len(body))
	}
	var out struct {
		Outputs []struct {
			Name       string
			Parameters struct {
				BinaryDataSize int `json:"binary_data_size"`
			}
		}
	}
	if err := json.Unmarshal(body[:n], &out); err != nil {
		t.Fatalf("the answer's JSON part: %v: %q", err, body[:n])
	}
	size := 0
	for _, o := range out.Outputs {
		size += o.Parameters.BinaryDataSize
	}
	if len(out.Outputs) != 3 || size == 0 || n+size != len(body) { // label, score, probabilities
		t.Errorf("outputs %+v hold %d binary bytes; the answer has %d after its JSON", out.Outputs, size, len(body)-n)
	}
}
