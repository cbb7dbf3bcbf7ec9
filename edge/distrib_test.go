package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/discovery"
	"github.com/sentimentpro/sentiment/distrib"
	testrig "github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestEdgesShareArtifactsInTheirRegion runs the real binaries (registry
// on S3, Consul, edges with blob servers) with 4 MiB artifacts:
//   - an edge that starts after another holds the model fetches it from
//     that peer, not the registry;
//   - a promote with two edges running costs the registry one copy: the
//     seeder's; the other edge gets it from the seeder;
//   - a peer that serves the artifact with one byte flipped cannot make an
//     edge load it: the edge refuses those bytes and fetches from the
//     registry;
//   - an edge with no healthy peer gets the model from the registry;
//   - an edge whose download is reset at half resumes from the byte it had.
func TestEdgesShareArtifactsInTheirRegion(t *testing.T) {
	agent := testenv.Consul(t, "dc-eu").Agent("dc-eu")
	s3srv := testenv.S3(t)
	reg := registrytest.StartBinary(t, registrytest.Binary{S3: s3srv, Bucket: testenv.NewBucket(t, s3srv, "distrib")})
	r := &rig{admin: reg.Admin}
	arts := map[string][]byte{}
	for i, v := range []string{"v1", "v2", "v3", "v4"} {
		data, err := testrig.LargeArtifact(20, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		arts[v] = data
		r.publish(t, v, data, nil)
	}
	size := float64(len(arts["v1"]))
	r.promote(t, "v1")
	startEdge := func(name, registry string, args ...string) *testenv.Service {
		ports, _ := testenv.FreePorts(1)
		return testenv.StartEdge(t, testenv.Edge{Name: name, Region: "eu-west", Model: "demo", Registry: registry,
			Token: registrytest.ReaderToken, Consul: agent.HTTPAddr(), WaitLive: true,
			Args: append([]string{"-blob-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-peer-wait", "3s"}, args...)})
	}
	registryOut := func() float64 { return metric(t, reg.URL, "registry_blob_bytes_out_total") }

	a := startEdge("edge-a", reg.URL)
	waitVersion(t, a.Addr, "v1", 30*time.Second)
	waitHolders(t, agent, arts["v1"], 1)
	before := registryOut()
	b := startEdge("edge-b", reg.URL)
	waitVersion(t, b.Addr, "v1", 30*time.Second)
	if got := metric(t, b.URL, `edge_artifact_fetch_bytes_total{source="peer"}`); got != size {
		t.Errorf("edge-b started beside a holder: %v bytes from its peer, want %v", got, size)
	}
	if got := registryOut() - before; got != 0 {
		t.Errorf("edge-b's start cost the registry %v bytes, want 0", got)
	}

	// A promote with both running: one copy from the registry.
	waitHolders(t, agent, arts["v1"], 2)
	before = registryOut()
	r.promote(t, "v2")
	waitVersion(t, a.Addr, "v2", 30*time.Second)
	waitVersion(t, b.Addr, "v2", 30*time.Second)
	if got := registryOut() - before; got != size {
		t.Errorf("the promote to two edges cost the registry %v bytes, want one copy (%v)", got, size)
	}
	fromPeers := metric(t, a.URL, `edge_artifact_fetch_bytes_total{source="peer"}`) + metric(t, b.URL, `edge_artifact_fetch_bytes_total{source="peer"}`)
	if fromPeers != 2*size { // b's v1, and v2 for whichever was not the seeder
		t.Errorf("%v bytes went edge to edge, want %v", fromPeers, 2*size)
	}

	// A lying peer: the only holder of v3, serving it with a byte flipped.
	b.Stop(10 * time.Second)
	liar := lyingPeer(t, agent, arts["v3"])
	before = registryOut()
	r.promote(t, "v3")
	waitVersion(t, a.Addr, "v3", 30*time.Second)
	if got := metric(t, a.URL, `edge_artifact_fetch_mismatches_total{source="peer"}`); got != 1 {
		t.Errorf("edge-a refused %v downloads from peers, want 1 (the liar's)", got)
	}
	if got := registryOut() - before; got != size {
		t.Errorf("after refusing the liar, edge-a took %v bytes from the registry, want %v", got, size)
	}
	if liar.served() == 0 {
		t.Error("the liar served nothing: the test did not test it")
	}
	assertServes(t, a.Addr, arts["v3"])

	// No healthy peer: edge-a and the liar gone, a new edge gets v3 from
	// the registry. Its download is reset at half and resumes.
	a.Stop(10 * time.Second)
	liar.close()
	proxy, proxyURL := testenv.StartCutProxy(t, strings.TrimPrefix(reg.URL, "http://"), len(arts["v3"])/2)
	c := startEdge("edge-c", proxyURL)
	waitVersion(t, c.Addr, "v3", 60*time.Second)
	if got := metric(t, c.URL, `edge_artifact_fetch_bytes_total{source="registry"}`); got != size {
		t.Errorf("edge-c took %v bytes from the registry, want exactly one copy (%v): resumed, not restarted", got, size)
	}
	if got := metric(t, c.URL, `edge_artifact_fetch_resumes_total{source="registry"}`); got != 1 {
		t.Errorf("edge-c resumed %v times, want 1", got)
	}
	var blobRanges []string
	for _, rg := range proxy.Ranges() {
		if rg != "" {
			blobRanges = append(blobRanges, rg)
		}
	}
	if len(blobRanges) != 1 || blobRanges[0] == "bytes=0-" {
		t.Errorf("ranges asked through the cutting proxy: %q, want one resuming past byte 0", blobRanges)
	}
	t.Logf("edge-c resumed with %q after a reset at byte %d", blobRanges, len(arts["v3"])/2)
	assertServes(t, c.Addr, arts["v3"])
}

// waitHolders waits until n blob servers advertise data in Consul.
func waitHolders(t *testing.T, agent *testenv.ConsulAgent, data []byte, n int) {
	t.Helper()
	hexDigest := strings.TrimPrefix(model.Digest(data), "sha256:")
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d holders of the artifact", n), func() error {
		entries, _, err := agent.Client().Health().Service("sentiment-edge"+distrib.ServiceSuffix, "", true, nil)
		if err != nil {
			return err
		}
		held := 0
		for _, e := range entries {
			if strings.Contains(e.Service.Meta[discovery.MetaArtifacts], hexDigest) {
				held++
			}
		}
		if held < n {
			return fmt.Errorf("%d of %d hold it", held, n)
		}
		return nil
	})
}

// assertServes checks that the edge serves the artifact data: its digest,
// and answers.
func assertServes(t *testing.T, addr string, data []byte) {
	t.Helper()
	_, body := get(t, "http://"+addr+"/health/ready")
	if !strings.Contains(body, model.Digest(data)) {
		t.Errorf("edge at %s is not serving %s: %s", addr, model.Digest(data), body)
	}
	if ok, total := predictN(t, addr, 20); ok != total {
		t.Errorf("edge at %s answered %d of %d", addr, ok, total)
	}
}

// liar is a blob server registered in Consul as a holder of an artifact,
// serving it with one byte flipped.
type liar struct {
	hs  *httptest.Server
	reg *discovery.Registrar
	n   *int64
}

func lyingPeer(t *testing.T, agent *testenv.ConsulAgent, data []byte) *liar {
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x40
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blob"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	var served int64
	srv := &distrib.Server{Path: func(string) string { return filepath.Join(dir, "blob") }}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, distrib.BlobPath) {
			served++
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	host, port, _ := discovery.SplitHostPort(strings.TrimPrefix(hs.URL, "http://"))
	reg := discovery.NewRegistrar(agent.Client().Agent(), discovery.Registration{ID: "liar-blobs", Name: "sentiment-edge" + distrib.ServiceSuffix,
		Address: host, Port: port, Tags: []string{"eu-west"}, CheckURL: hs.URL + "/health/live", CheckInterval: 200 * time.Millisecond,
		Meta: map[string]string{discovery.MetaRegion: "eu-west", discovery.MetaArtifacts: strings.TrimPrefix(model.Digest(data), "sha256:")}},
		func() bool { return true }, nil)
	if err := reg.Update(nil); err != nil {
		t.Fatal(err)
	}
	waitHolders(t, agent, data, 1)
	return &liar{hs: hs, reg: reg, n: &served}
}

func (l *liar) served() int64 { return *l.n }

func (l *liar) close() {
	l.hs.Close()
	l.reg.Deregister()
}

// metric reads one sample (name with its labels, as exposed) from base's
// /metrics; 0 when absent.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}
