package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/oippb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// TestStack runs what `make run` and `make stack` run, sends a prediction
// to every region through the geo router, and stops the stack with Ctrl-C
// (SIGINT), checking that nothing is left listening. `make stack` is TLS on
// every hop: every listener refuses plain HTTP, the registry and the edges
// refuse a client without a certificate from the stack's CA, and the
// predictions, the smoke test and sentctl's publishes all go over TLS.
func TestStack(t *testing.T) {
	for _, real := range []bool{false, true} {
		t.Run(fmt.Sprintf("real=%v", real), func(t *testing.T) {
			if testing.Short() {
				t.Skip("starts every service: skipped in -short mode")
			}
			bin := filepath.Dir(testenv.GoBinary(t, "./cmd/stack"))
			for _, pkg := range []string{"./cmd/registry", "./cmd/edge", "./cmd/geo", "./cmd/sentctl"} {
				testenv.GoBinary(t, pkg)
			}
			ports, err := testenv.FreePorts(6)
			if err != nil {
				t.Fatal(err)
			}
			// Edges take consecutive ports from -edge-port; FreePorts gives
			// no such guarantee, so pick a base and trust the next two.
			state := t.TempDir()
			args := []string{"-bin", bin, "-dir", state, "-registry-port", fmt.Sprint(ports[0]),
				"-geo-port", fmt.Sprint(ports[1]), "-edge-port", fmt.Sprint(ports[2]), "-edge-grpc-port", fmt.Sprint(apart(ports[2], ports[3:])),
				"-geo-grpc-port", fmt.Sprint(ports[5]), "-onnxruntime-lib", testenv.ONNXRuntime(t)}
			if real {
				args = append(args, "-real", "-tls")
			}
			cmd := exec.Command(filepath.Join(bin, "stack"), args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			banner := make(chan string, 1)
			go func() {
				var all strings.Builder
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					all.WriteString(sc.Text() + "\n")
					if strings.Contains(sc.Text(), "Ctrl-C stops everything") {
						banner <- all.String()
						io.Copy(io.Discard, out)
						return
					}
				}
				banner <- all.String()
			}()
			select {
			case b := <-banner:
				if !strings.Contains(b, "is running") {
					t.Fatalf("stack did not start:\n%s", b)
				}
				if want := fmt.Sprintf("grpc://127.0.0.1:%d", apart(ports[2], ports[3:])); !strings.Contains(b, want) {
					t.Errorf("the banner does not give the first edge's gRPC address %s:\n%s", want, b)
				}
			case <-time.After(90 * time.Second):
				t.Fatal("no banner within 90s")
			}
			sentctlEnv := readEnv(t, filepath.Join(state, "sentctl.env"))
			scheme, client := "http", &http.Client{Timeout: 10 * time.Second}
			if real {
				scheme, client = "https", trusting(t, filepath.Join(state, "tls", "ca.pem"))
				refusesPlainHTTP(t, client, ports[0], ports[1], ports[2], ports[2]+1, ports[2]+2)
			}
			geo := fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[1])
			for _, region := range []string{"us-east", "eu-west", "ap-south"} {
				req, _ := http.NewRequest("POST", geo+"/v1/predict", strings.NewReader(`{"text":"a wonderful, moving film"}`))
				req.Header.Set("X-Region", region)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-Served-Region") != region || !strings.Contains(string(body), `"label":"positive"`) {
					t.Errorf("%s: %d served by %q: %s", region, resp.StatusCode, resp.Header.Get("X-Served-Region"), body)
				}
			}
			// gRPC through the geo router reaches each region too.
			caFile := ""
			if real {
				caFile = filepath.Join(state, "tls", "ca.pem")
			}
			for _, region := range []string{"us-east", "eu-west", "ap-south"} {
				grpcThroughGeo(t, fmt.Sprintf("127.0.0.1:%d", ports[5]), caFile, region)
			}
			if !real {
				// The Python client generated from the protocol's proto
				// (conformance/grpc_client.py) on the router and an edge.
				for _, target := range []int{ports[5], apart(ports[2], ports[3:])} {
					pythonGRPC(t, fmt.Sprintf("127.0.0.1:%d", target))
				}
			}
			// The operators' smoke test passes, and fails on a region
			// that does not exist.
			smoke := exec.Command(filepath.Join(bin, "sentctl"), "smoke", "--url", geo, "--regions", "us-east,eu-west,ap-south")
			smoke.Env = append(os.Environ(), sentctlEnv...)
			if out, err := smoke.CombinedOutput(); err != nil || !strings.Contains(string(out), "all 7 checks passed") {
				t.Errorf("sentctl smoke: %v\n%s", err, out)
			}
			smoke = exec.Command(filepath.Join(bin, "sentctl"), "smoke", "--url", geo, "--regions", "mars")
			smoke.Env = append(os.Environ(), sentctlEnv...)
			if out, err := smoke.CombinedOutput(); err == nil || !strings.Contains(string(out), "region mars is not routed") {
				t.Errorf("sentctl smoke on an unknown region: %v\n%s", err, out)
			}
			// The stack requires signatures: an unsigned publish is refused,
			// one signed with the stack's key is taken.
			tokens, err := os.ReadFile(filepath.Join(state, "tokens"))
			if err != nil {
				t.Fatal(err)
			}
			_, publisher, _ := strings.Cut(string(tokens), "SENTCTL_PUBLISHER_TOKEN=")
			publisher, _, _ = strings.Cut(publisher, "\n")
			artifact := filepath.Join(state, "v2.sapm")
			if err := os.WriteFile(artifact, defaultmodel.Artifact(), 0o644); err != nil {
				t.Fatal(err)
			}
			publish := func() (string, error) {
				c := exec.Command(filepath.Join(bin, "sentctl"), "publish", "--model", "sentiment", "--version", "v2", "--file", artifact)
				c.Env = append(append(os.Environ(), sentctlEnv...), "SENTCTL_TOKEN="+publisher)
				out, err := c.CombinedOutput()
				return string(out), err
			}
			if out, err := publish(); err == nil || !strings.Contains(out, "signature") {
				t.Errorf("unsigned publish to the stack: %v\n%s", err, out)
			}
			if out, err := exec.Command(filepath.Join(bin, "sentctl"), "sign", "--key", filepath.Join(state, "publisher.key"), "--model", artifact).CombinedOutput(); err != nil {
				t.Fatalf("sign: %v\n%s", err, out)
			}
			if out, err := publish(); err != nil || !strings.Contains(out, "signed by") {
				t.Errorf("signed publish to the stack: %v\n%s", err, out)
			}
			if !real {
				onnxInOneRegion(t, bin, state, geo, client, sentctlEnv, publisher, tokens)
			}
			// A staged rollout of v2 (the same model) in eu-west, judged on
			// the edges' metrics: read from the stack's list, or found in
			// Consul and read over mutual TLS.
			_, admin, _ := strings.Cut(string(tokens), "SENTCTL_ADMIN_TOKEN=")
			admin, _, _ = strings.Cut(admin, "\n")
			stopLoad := make(chan struct{})
			loadDone := make(chan struct{})
			go func() {
				defer close(loadDone)
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					default:
					}
					req, _ := http.NewRequest("POST", geo+"/v1/predict", strings.NewReader(`{"text":"a wonderful, moving film"}`))
					req.Header.Set("X-Region", "eu-west")
					req.Header.Set("X-Routing-Key", fmt.Sprint("user-", i))
					if resp, err := client.Do(req); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}()
			// Meanwhile the second model answers the same text, through the
			// router to the same region: sentiment's rollout must not change
			// one of its answers, nor fail one.
			reviews := map[string]int{}
			reviewsFailed := 0
			reviewsDone := make(chan struct{})
			go func() {
				defer close(reviewsDone)
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					default:
					}
					req, _ := http.NewRequest("POST", geo+"/v1/predict", strings.NewReader(`{"model":"reviews","text":"a long, slow film that stays with you"}`))
					req.Header.Set("X-Region", "eu-west")
					// Users of their own, each within the rate limit.
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.7.%d.%d", i/250%250, i%250+1))
					resp, err := client.Do(req)
					if err != nil {
						reviewsFailed++
						reviews[err.Error()]++
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						reviewsFailed++
					}
					answer, _, _ := strings.Cut(string(body), `,"request_id"`)
					reviews[answer]++
				}
			}()
			// v2 is v1's twin, so the rollout must succeed. The latency
			// floor is raised: on a machine busy with other tests the
			// scheduler holds up a request by milliseconds now and then
			// (a time slice), and rollout's own tests judge latency.
			rollout := exec.Command(filepath.Join(bin, "sentctl"), "rollout", "start", "--model", "sentiment", "--version", "v2",
				"--regions", "eu-west", "--steps", "50,100", "--interval", "1s", "--min-requests", "5", "--min-shadow", "5",
				"--latency-floor", "100ms", "--wait", "--poll", "200ms", "--timeout", "60s")
			rollout.Env = append(append(os.Environ(), sentctlEnv...), "SENTCTL_TOKEN="+admin)
			rolled, err := rollout.CombinedOutput()
			close(stopLoad)
			<-loadDone
			<-reviewsDone
			total := 0
			for _, n := range reviews {
				total += n
			}
			t.Logf("reviews answered %d requests during sentiment's rollout, %d failed", total, reviewsFailed)
			if len(reviews) != 1 || reviewsFailed != 0 || total < 20 {
				t.Errorf("the reviews model during sentiment's rollout: %d failed, answers %v", reviewsFailed, reviews)
			}
			for answer := range reviews {
				if !strings.Contains(answer, `"model":"reviews","version":"v1","region":"eu-west"`) {
					t.Errorf("reviews answered %s", answer)
				}
			}
			if err != nil || !strings.Contains(string(rolled), "sentiment/production v2: succeeded") {
				t.Errorf("sentctl rollout start --wait: %v\n%s", err, rolled)
			}
			// The second model's status: every edge serves its v1, read
			// from each edge's readiness or, on Consul, its meta.
			status := exec.Command(filepath.Join(bin, "sentctl"), "status", "--model", "reviews")
			status.Env = append(append(os.Environ(), sentctlEnv...), "SENTCTL_TOKEN="+admin)
			if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), "reviews/production revision 1: converged=true") || strings.Count(string(out), "passing   serves v1") != 3 {
				t.Errorf("sentctl status --model reviews: %v\n%s", err, out)
			}
			cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stack exited with %v after Ctrl-C", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("stack did not stop within 30s of Ctrl-C")
			}
			for _, p := range []int{ports[0], ports[1], ports[2], ports[2] + 1, ports[2] + 2} {
				if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
					c.Close()
					t.Errorf("port %d still accepts connections after the stack stopped", p)
				}
			}
		})
	}
}

// readEnv reads a KEY=value file, such as the stack's sentctl.env.
func readEnv(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// trusting is a client trusting the CA in caFile, with no client
// certificate.
func trusting(t *testing.T, caFile string) *http.Client {
	cfg, err := tlsfiles.ClientConfig(caFile, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return tlsfiles.HTTPClient(cfg, 10*time.Second)
}

// refusesPlainHTTP checks that no listener of the stack serves plain HTTP,
// that each serves TLS with a certificate from the stack's CA, and that
// the internal ones (all but the geo router) answer a client without a
// certificate on their health probes only.
func refusesPlainHTTP(t *testing.T, tlsClient *http.Client, registry, geo int, edges ...int) {
	t.Helper()
	plain := &http.Client{Timeout: 5 * time.Second}
	for _, port := range append([]int{registry, geo}, edges...) {
		base := fmt.Sprintf("127.0.0.1:%d", port)
		if resp, err := plain.Get("http://" + base + "/health/live"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || strings.Contains(string(body), `"status"`) {
				t.Errorf("port %d served plain HTTP: %d %s", port, resp.StatusCode, body)
			}
		}
		resp, err := tlsClient.Get("https://" + base + "/health/live")
		if err != nil {
			t.Errorf("port %d: no TLS with the stack's CA: %v", port, err)
			continue
		}
		resp.Body.Close()
		if port == geo {
			// The front door's own answers say HTTPS only, like the edges'.
			if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
				t.Errorf("geo /health/live over TLS: Strict-Transport-Security %q", hsts)
			}
			continue
		}
		path := "/v2"
		if port == registry {
			path = "/v1/models"
		}
		resp, err = tlsClient.Get("https://" + base + path)
		if err != nil {
			t.Errorf("port %d: %v", port, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "client certificate") {
			t.Errorf("port %d %s without a client certificate: %d %s", port, path, resp.StatusCode, body)
		}
		if port != registry && (resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Strict-Transport-Security") == "") {
			t.Errorf("port %d: the 403 lacks the security headers: %v", port, resp.Header)
		}
		if port == registry {
			// The console is for browsers without a client certificate:
			// its own login guards it.
			resp, err := tlsClient.Get("https://" + base + "/ui/login")
			if err != nil {
				t.Errorf("console: %v", err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="token"`) {
				t.Errorf("the console's login without a client certificate: %d", resp.StatusCode)
			}
		}
	}
}

// onnxInOneRegion publishes the example three-label ONNX bundle as the
// ML team would (sentctl publish --dir, signed), promotes it in ap-south
// only, and asks the geo router for every text PyTorch was asked: the
// same arg-max, probabilities within 1e-3, while the other regions keep
// the built-in model.
func onnxInOneRegion(t *testing.T, bin, state, geo string, client *http.Client, sentctlEnv []string, publisher string, tokens []byte) {
	t.Helper()
	bundleDir, err := filepath.Abs("../../examples/onnx/imdb3-tiny-bert")
	if err != nil {
		t.Fatal(err)
	}
	_, admin, _ := strings.Cut(string(tokens), "SENTCTL_ADMIN_TOKEN=")
	admin, _, _ = strings.Cut(admin, "\n")
	sentctl := func(token string, args ...string) string {
		t.Helper()
		c := exec.Command(filepath.Join(bin, "sentctl"), args...)
		c.Env = append(append(os.Environ(), sentctlEnv...), "SENTCTL_TOKEN="+token)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("sentctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := sentctl(publisher, "publish", "--model", "sentiment", "--version", "imdb3", "--dir", bundleDir,
		"--sign-key", filepath.Join(state, "publisher.key"))
	if !strings.Contains(out, "onnx, labels negative,neutral,positive") {
		t.Fatalf("publish --dir: %s", out)
	}
	// Its accuracy is on another task (three classes of IMDB reviews), so
	// the quality gate, which compares it with the default model's SST-2
	// figure, refuses it unless forced.
	c := exec.Command(filepath.Join(bin, "sentctl"), "promote", "--model", "sentiment", "--version", "imdb3", "--regions", "ap-south")
	c.Env = append(append(os.Environ(), sentctlEnv...), "SENTCTL_TOKEN="+admin)
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "quality gate") {
		t.Errorf("promote without --force: %v\n%s", err, out)
	}
	sentctl(admin, "promote", "--model", "sentiment", "--version", "imdb3", "--regions", "ap-south", "--force", "--reason", "ONNX in one region")
	asked := 0
	ask := func(region, text string) (label string, probs map[string]float64, version string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"text": text})
		req, _ := http.NewRequest("POST", geo+"/v1/predict", bytes.NewReader(body))
		req.Header.Set("X-Region", region)
		// Many clients (the stack's router believes this machine's
		// X-Forwarded-For), each well under the edges' 100 a minute.
		asked++
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", asked%200))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct {
			Label         string             `json:"label"`
			Probabilities map[string]float64 `json:"probabilities"`
			Version       string             `json:"version"`
			Error         string             `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 {
			if resp.StatusCode == 400 && strings.TrimSpace(text) == "" {
				return "", nil, "" // the API refuses an empty text, as it should
			}
			t.Fatalf("%s: %.60q: %d %v %s", region, text, resp.StatusCode, err, answer.Error)
		}
		return answer.Label, answer.Probabilities, answer.Version
	}
	testenv.Eventually(t, 30*time.Second, "ap-south serves the ONNX model", func() error {
		if _, _, v := ask("ap-south", "good"); v != "imdb3" {
			return fmt.Errorf("ap-south serves %s", v)
		}
		return nil
	})
	if _, probs, v := ask("us-east", "good"); v == "imdb3" || len(probs) != 2 {
		t.Errorf("us-east serves %s with %d labels: the promote was for ap-south only", v, len(probs))
	}
	f, err := os.Open(bundleDir + ".reference.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	labels := []string{"negative", "neutral", "positive"}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n, worst := 0, 0.0
	for sc.Scan() {
		var ref struct {
			Text          string    `json:"text"`
			Probabilities []float64 `json:"probabilities"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			t.Fatal(err)
		}
		label, probs, _ := ask("ap-south", ref.Text)
		if label == "" {
			continue
		}
		best := 0
		for i, p := range ref.Probabilities {
			if p > ref.Probabilities[best] {
				best = i
			}
			worst = max(worst, math.Abs(probs[labels[i]]-p))
		}
		if label != labels[best] {
			t.Errorf("%.60q: %s, PyTorch says %s (%v)", ref.Text, label, labels[best], ref.Probabilities)
		}
		n++
	}
	if worst > 1e-3 {
		t.Errorf("largest difference from PyTorch's probabilities through the geo router: %.2g, want <= 1e-3", worst)
	}
	t.Logf("ONNX bundle through the geo router: %d texts, arg-max as PyTorch's, largest probability difference %.2g", n, worst)
	sentctl(admin, "rollback", "--model", "sentiment", "--regions", "ap-south")
}

// apart is the first of candidates whose run of three ports (one per
// region) does not overlap base's.
func apart(base int, candidates []int) int {
	for _, c := range candidates {
		if c > base+2 || c+2 < base {
			return c
		}
	}
	return base + 100
}

// grpcThroughGeo makes an Open Inference Protocol gRPC call through the geo
// router at addr (TLS trusting caFile, if set), asking for region with
// the x-region metadata, and checks the answer and who served it.
func grpcThroughGeo(t *testing.T, addr, caFile, region string) {
	t.Helper()
	creds := insecure.NewCredentials()
	if caFile != "" {
		cfg, err := tlsfiles.ClientConfig(caFile, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-region", region), 10*time.Second)
	defer cancel()
	var header metadata.MD
	resp, err := oippb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "sentiment",
		Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1},
			Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a wonderful, moving film")}}}}}, grpc.Header(&header))
	if err != nil {
		t.Fatalf("gRPC through the geo router to %s: %v", region, err)
	}
	if got := header.Get("x-served-region"); len(got) != 1 || got[0] != region || string(resp.Outputs[0].Contents.BytesContents[0]) != "positive" {
		t.Errorf("gRPC to %s: served by %v, answer %v", region, got, resp.Outputs)
	}
}

// pythonGRPC runs conformance/grpc_client.py (stubs generated by Debian's
// grpc_tools from the protocol's proto) against target and checks that
// every call was answered; conformance's tests judge the answers in
// detail.
func pythonGRPC(t *testing.T, target string) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "conformance/grpc_client.py", "oippb/grpc_predict_v2.proto", target, "sentiment", "a wonderful film", "a dull mess")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grpc_client.py on %s: %v %s", target, err, out)
	}
	var seen struct {
		Live, Ready bool
		Typed       struct {
			Outputs map[string]struct{ Data []any }
		}
		Raw struct {
			Outputs map[string]struct{ Data []any }
		}
		Errors map[string]string
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("grpc_client.py on %s printed %q: %v", target, out, err)
	}
	labels := seen.Typed.Outputs["label"].Data
	if !seen.Live || !seen.Ready || len(labels) != 2 || labels[0] != "positive" || labels[1] != "negative" ||
		len(seen.Raw.Outputs["label"].Data) != 2 || !strings.HasPrefix(seen.Errors["unknown model"], "NOT_FOUND") {
		t.Errorf("grpc_client.py on %s: %s", target, out)
	}
}
