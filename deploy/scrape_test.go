package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/oippb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestPrometheusScrape runs the registry, an edge and the geo router as
// real processes, a real Prometheus scraping them with the shipped alert
// rules loaded, and checks every target is up, the key series carry the
// expected labels, every metric the rules and the dashboard use exists,
// and names follow Prometheus conventions.
func TestPrometheusScrape(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and the services: skipped in -short mode")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: run `make tools` (it installs Debian's prometheus)")
	}
	ports, err := testenv.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	regAddr, edgeAddr, geoAddr, promAddr, grpcAddr := addr(ports[0]), addr(ports[1]), addr(ports[2]), addr(ports[3]), addr(ports[4])

	publishAndMove(t, registrytest.StartBinary(t, registrytest.Binary{Addr: regAddr}).Admin)
	testenv.StartEdge(t, testenv.Edge{Name: "edge", Addr: edgeAddr, Model: "demo", Registry: "http://" + regAddr,
		Token: registrytest.ReaderToken, RateLimit: 100, Args: []string{"-grpc-listen", grpcAddr}})
	testenv.StartGeo(t, testenv.Geo{Addr: geoAddr, Static: "us-east=" + edgeAddr, RateLimit: 100, WaitReady: true})

	rules, _ := filepath.Abs(alertsFile)
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: sentiment-edge
    static_configs: [{targets: [%q], labels: {region: us-east}}]
  - job_name: sentiment-registry
    static_configs: [{targets: [%q], labels: {region: us-east}}]
  - job_name: sentiment-geo
    static_configs: [{targets: [%q]}]
`, rules, edgeAddr, regAddr, geoAddr)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.StartHTTPService(t, "prometheus", promBin,
		[]string{"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + promAddr, "--log.level=warn"},
		nil, "http://"+promAddr+"/-/ready")
	prom := promClient{base: "http://" + promAddr}

	// Every target up.
	testenv.Eventually(t, 30*time.Second, "all three targets up", func() error {
		res := prom.query(t, `up{job=~"sentiment-.*"} == 1`)
		if len(res) != 3 {
			return fmt.Errorf("%d targets up", len(res))
		}
		return nil
	})
	// Some traffic through the router, and a gRPC call, once Prometheus
	// scrapes, twice: a counter's series appears with its first request,
	// so the rates the SLO rules take need samples from before and after
	// the second round.
	traffic := func() {
		for i := 0; i < 5; i++ {
			resp, err := http.Post("http://"+geoAddr+"/v1/predict", "application/json", strings.NewReader(`{"text":"a fine film"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		grpcInfer(t, grpcAddr, "demo")
	}
	traffic()
	testenv.Eventually(t, 15*time.Second, "the first round scraped", func() error {
		if len(prom.query(t, `edge_grpc_requests_total{method="ModelInfer"} == 1`)) == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	traffic()

	// Key series, with the labels the rules and the dashboard group by.
	for _, q := range []string{
		`edge_requests_total{job="sentiment-edge",region="us-east",route="/v1/predict",code="200"} >= 5`,
		`edge_model_info{job="sentiment-edge",region="us-east",model="demo",version="v2",source="registry"} == 1`,
		`edge_version_requests_total{job="sentiment-edge",version="v2"} >= 5`,
		`edge_predictions_total{version="v2",label="positive"} >= 1`,
		`edge_prediction_score_ratio_count{version="v2"} >= 5`,
		`edge_prediction_text_bytes_bucket{version="v2",le="16"} >= 5`,
		`edge_model_loaded{region="us-east"} == 1`,
		`edge_model_sync_last_success_timestamp_seconds > 0`,
		`geo_upstream_requests_total{job="sentiment-geo",region="us-east",result="ok"} >= 5`,
		`geo_requests_total{code="200"} >= 5`,
		`geo_breaker_state{region="us-east"} == 0`,
		`geo_healthy_edges{region="us-east"} == 1`,
		`registry_store_up{job="sentiment-registry"} == 1`,
		`registry_promotes_total{result="ok"} >= 2`,
		`histogram_quantile(0.5, sum by (le) (edge_request_duration_seconds_bucket{route="/v1/predict"})) > 0`,
		`edge_grpc_requests_total{region="us-east",method="ModelInfer",code="OK"} == 2`,
		// The SLO rules, evaluated by Prometheus on the edge's series.
		`region:sentiment_slo_errors:ratio_rate5m{region="us-east"} == 0`,
		`region:sentiment_slo_slow:ratio_rate5m{region="us-east"} >= 0`,
	} {
		testenv.Eventually(t, 15*time.Second, q, func() error {
			if len(prom.query(t, q)) == 0 {
				return fmt.Errorf("no result")
			}
			return nil
		})
	}

	// Every metric the alert rules and the dashboard use is exposed.
	names := map[string]bool{}
	for _, n := range prom.labelValues(t, "__name__") {
		names[n] = true
	}
	for _, n := range referencedMetrics(t) {
		if !names[n] {
			t.Errorf("the rules or the dashboard use %s, which no service exposes", n)
		}
	}

	// Conventions: counters end in _total, histograms measure base units
	// (or a ratio, 0 to 1).
	checked := 0
	for name, metas := range prom.metadata(t) {
		if !strings.HasPrefix(name, "edge_") && !strings.HasPrefix(name, "geo_") && !strings.HasPrefix(name, "registry_") {
			continue
		}
		checked++
		switch typ := metas[0].Type; {
		case typ == "counter" && !strings.HasSuffix(name, "_total"):
			t.Errorf("counter %s does not end in _total", name)
		case typ == "histogram" && !strings.HasSuffix(name, "_seconds") && !strings.HasSuffix(name, "_bytes") && !strings.HasSuffix(name, "_ratio"):
			t.Errorf("histogram %s is not in seconds, bytes or a ratio", name)
		case typ == "unknown" || typ == "":
			t.Errorf("%s has no # TYPE", name)
		}
	}

	if checked < 20 {
		t.Errorf("metadata for only %d of our metrics", checked)
	}

	// The shipped rules load and evaluate in a real Prometheus.
	testenv.Eventually(t, 15*time.Second, "every rule evaluated without error", func() error {
		var out struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					}
				}
			}
		}
		prom.get(t, "/api/v1/rules", nil, &out)
		n := 0
		for _, g := range out.Data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
				n++
			}
		}
		if n < 13 {
			return fmt.Errorf("%d rules loaded", n)
		}
		return nil
	})
	// Nothing is wrong, so nothing fires.
	if firing := prom.query(t, `ALERTS{alertstate="firing"}`); len(firing) > 0 {
		t.Errorf("alerts firing on a healthy stack: %v", firing)
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// publishAndMove publishes v1 and v2 of "demo", promotes v1 then v2 and
// rolls back to v1 and forward again, so every registry counter exists.
func publishAndMove(t *testing.T, c *regclient.Client) {
	t.Helper()
	ctx := context.Background()
	for i, v := range []string{"v1", "v2"} {
		registrytest.Publish(t, c, "demo", v, testenv.TinyArtifact(t, uint64(i+1), 0))
		if _, err := c.Promote(ctx, "demo", "production", wire.MoveRequest{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Rollback(ctx, "demo", "production", wire.MoveRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
}

type promClient struct{ base string }

func (p promClient) get(t *testing.T, path string, params url.Values, out any) {
	t.Helper()
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func (p promClient) query(t *testing.T, q string) []map[string]any {
	t.Helper()
	var out struct {
		Data struct{ Result []map[string]any }
	}
	p.get(t, "/api/v1/query", url.Values{"query": {q}}, &out)
	return out.Data.Result
}

func (p promClient) labelValues(t *testing.T, label string) []string {
	t.Helper()
	var out struct{ Data []string }
	p.get(t, "/api/v1/label/"+label+"/values", nil, &out)
	return out.Data
}

func (p promClient) metadata(t *testing.T) map[string][]struct{ Type string } {
	t.Helper()
	var out struct {
		Data map[string][]struct{ Type string }
	}
	p.get(t, "/api/v1/metadata", nil, &out)
	return out.Data
}

// grpcInfer makes one ModelInfer call to the edge's gRPC listener.
func grpcInfer(t *testing.T, addr, model string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in := &oippb.ModelInferRequest_InferInputTensor{Name: "text", Datatype: "BYTES", Shape: []int64{1},
		Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a fine film")}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := oippb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx,
		&oippb.ModelInferRequest{ModelName: model, Inputs: []*oippb.ModelInferRequest_InferInputTensor{in}}); err != nil {
		t.Fatalf("gRPC ModelInfer: %v", err)
	}
}
