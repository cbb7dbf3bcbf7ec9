package manifests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/images"
	"github.com/sentimentpro/sentiment/internal/kubecluster"
	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store/s3"
	"github.com/valyala/fasthttp"
)

// TestOnANode deploys the product's images with the eu-west overlay on a
// real one-node Kubernetes (internal/kubecluster: the control plane,
// containerd, runc, a kubelet, kube-proxy and CoreDNS on this machine,
// Consul and S3 on the node as the manifests expect them), then checks
// what the production guide has an operator check: every pod Ready
// through its own probes, the edges' readiness, a prediction through the
// geo router's Service; then a rolling update of the edge image with a
// client asking all along, which must see no failure; then the pods' logs,
// which must hold no token and no text a client sent. After it, passing
// or failing, the host must be as it was.
func TestOnANode(t *testing.T) {
	dir, before := nodeDir(t)
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, filepath.Join(dir, "logs"))
		}
		if err := kubecluster.Down(dir); err != nil {
			t.Errorf("take down: %v", err)
		}
		if diff := before.Diff(kubecluster.TakeSnapshot(dir)); diff != "" {
			t.Errorf("the host is not as it was before the node:\n%s", diff)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, _ := filepath.Abs("..")
	start := time.Now()
	c, err := kubecluster.Up(ctx, kubecluster.Config{Dir: dir, RepoRoot: root, Datacenter: "dc-eu-west", Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node Ready in %s", time.Since(start).Round(time.Millisecond))
	importImages(t, c, root, "v1.0.0", "v1.0.1")
	d := deploy(t, ctx, c, root)
	t.Logf("deployed, every pod Ready, in %s", time.Since(start).Round(time.Millisecond))

	// The guide's checks: pods by label, the readiness endpoints.
	for _, app := range []string{"sentiment-edge", "sentiment-registry", "sentiment-geo"} {
		out := d.kubectl("get", "pods", "-l", "app.kubernetes.io/name="+app, "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].ready}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Errorf("%s: %d pods, want 2:\n%s", app, len(lines), out)
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, " Running true") {
				t.Errorf("%s: pod not running and ready: %q", app, l)
			}
		}
	}
	for _, svc := range []struct{ name, port, serverName, status string }{
		{"sentiment-edge", "8080", "sentiment-edge.sentiment.svc", "ready"},
		{"sentiment-registry", "8081", "sentiment-registry", "ready"},
		{"sentiment-geo", "443", "sentiment.test", "ok"},
	} {
		var ready struct {
			Status string `json:"status"`
			Models []struct {
				Version string `json:"version"`
			} `json:"models"`
		}
		d.getJSON(t, "https://"+d.serviceIP(svc.name)+":"+svc.port+"/health/ready", svc.serverName, &ready)
		if ready.Status != svc.status {
			t.Errorf("%s's readiness through its Service: %+v, want %s", svc.name, ready, svc.status)
		}
		if svc.name == "sentiment-edge" && (len(ready.Models) == 0 || ready.Models[0].Version != "v1") {
			t.Errorf("an edge's readiness through its Service: %+v, want sentiment v1", ready)
		}
	}

	podsStayOnTheNode(t, c, d)

	geo := "https://" + d.serviceIP("sentiment-geo") + ":443"
	label, region := d.predict(t, geo, "a warm, funny and moving film")
	if label != "positive" || region != "eu-west" {
		t.Fatalf("through the geo Service: label %q from region %q, want positive from eu-west", label, region)
	}

	// A rolling update of the edges while a client keeps asking.
	load := testenv.StartLoad(testenv.LoadConfig{URL: geo + "/v1/predict", Workers: 4, TLS: d.publicTLS(),
		Prepare: func(req *fasthttp.Request, _ int64) {
			req.SetBodyString(`{"text": "the client asks during the rollout"}`)
		}})
	var once sync.Once
	stopLoad := func() { once.Do(load.Stop) }
	t.Cleanup(stopLoad) // a failure below stops it before the node goes
	d.kubectl("set", "image", "deployment/sentiment-edge", "edge=sentiment-edge:v1.0.1")
	d.kubectl("rollout", "status", "deployment/sentiment-edge", "--timeout=5m")
	d.waitPods(t, "sentiment-edge", "v1.0.1")
	time.Sleep(2 * time.Second) // the old pods' last seconds behind the router
	stopLoad()
	t.Logf("rolling update of the edges through the geo Service: %s", load.Summary())
	if load.OK.Load() != load.Sent.Load() {
		t.Errorf("not every request was answered during the rolling update: %s", load.Summary())
	}
	if load.Sent.Load() < 20 {
		t.Errorf("only %d requests during the rolling update", load.Sent.Load())
	}

	// The pods' logs: no secret, no client's text.
	logs := d.kubectl("logs", "-l", "app.kubernetes.io/part-of=sentiment-analyzer-pro", "--all-containers", "--prefix", "--tail=-1", "--max-log-requests=20")
	if len(logs) == 0 {
		t.Error("no pod logged anything")
	}
	for what, s := range d.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the pods' logs hold %s", what)
		}
	}
	for _, text := range []string{"a warm, funny and moving film", "the client asks during the rollout"} {
		if strings.Contains(logs, text) {
			t.Errorf("the pods' logs hold a client's text %q", text)
		}
	}
}

// TestANodeThatFailsLeavesNothing starts a node whose kubelet exits at
// once: Up must fail naming it, and take down what it had started, so
// that the host is as it was.
func TestANodeThatFailsLeavesNothing(t *testing.T) {
	dir, before := nodeDir(t)
	t.Setenv("SAP_KUBELET_BIN", "/bin/false")
	root, _ := filepath.Abs("..")
	_, err := kubecluster.Up(context.Background(), kubecluster.Config{Dir: dir, RepoRoot: root, Datacenter: "dc-eu-west", Log: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "cannot start the kubelet") {
		t.Fatalf("Up with a kubelet that exits: %v, want an error naming the kubelet", err)
	}
	if diff := before.Diff(kubecluster.TakeSnapshot(dir)); diff != "" {
		t.Errorf("the host is not as it was after a failed start:\n%s", diff)
	}
}

// nodeDir skips t in -short mode or without root, takes down whatever an
// earlier run left, and returns the node tests' state directory with the
// host as it is before the node. The directory is fixed, so that a run
// that died leaves nothing the next one does not take down first.
func nodeDir(t *testing.T) (string, kubecluster.Snapshot) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a Kubernetes node: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("a Kubernetes node needs root (a bridge, cgroups, mounts): run make test as root")
	}
	dir := filepath.Join(filepath.Dir(rig.CacheDir()), "k8s-test")
	if err := kubecluster.Down(dir); err != nil {
		t.Fatalf("cannot take down what an earlier run left: %v", err)
	}
	return dir, kubecluster.TakeSnapshot(dir)
}

// importImages builds the three images at version and the edge's at
// next (the rolling update's), as `make images` builds them offline,
// and imports them into the node.
func importImages(t *testing.T, c *kubecluster.Cluster, root, version, next string) {
	t.Helper()
	start := time.Now()
	b := &images.Builder{Root: root, Store: t.TempDir(), ONNXRuntime: testenv.ONNXRuntime(t)}
	build := func(name, v string) {
		tag := "docker.io/library/sentiment-" + name + ":" + v
		if err := b.Build(name, v, tag); err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(b.Store, name+"-"+v+".tar")
		if _, err := b.Buildah("push", "--quiet", tag, "oci-archive:"+archive+":"+tag); err != nil {
			t.Fatal(err)
		}
		if err := c.ImportImage(archive); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"edge", "registry", "geo"} {
		build(name, version)
	}
	build("edge", next)
	t.Logf("images built and imported in %s", time.Since(start).Round(time.Millisecond))
}

// deployment is the product deployed on the node.
type deployment struct {
	c       *kubecluster.Cluster
	ctx     context.Context
	t       *testing.T
	ca      *devca.CA
	client  *tls.Config // the deployment's CA, a client certificate
	secrets map[string]string
}

// deploy creates the Secrets the runbook has an operator create, applies
// the eu-west overlay with the node's differences (overlay below), and
// publishes and promotes the default model, signed; it returns once
// every Deployment is Available.
func deploy(t *testing.T, ctx context.Context, c *kubecluster.Cluster, root string) *deployment {
	t.Helper()
	d := &deployment{c: c, ctx: ctx, t: t, ca: c.CA, secrets: map[string]string{}}
	d.kubectl("apply", "--server-side", "-f", filepath.Join(root, "manifests/base/namespace.yaml"))
	tlsSecret := func(name, cn string, dns ...string) {
		cert, key, err := d.ca.IssueFor(name, devca.Names{Subject: pkix.Name{CommonName: cn}, DNS: dns}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		d.kubectl("create", "secret", "generic", name, "--type=kubernetes.io/tls", "--from-file=tls.crt="+cert,
			"--from-file=tls.key="+key, "--from-file=ca.crt="+d.ca.CertFile())
	}
	tlsSecret("sentiment-edge-tls", "sentiment-edge", "sentiment-edge.sentiment.svc", "sentiment-edge")
	tlsSecret("sentiment-registry-tls", "sentiment-registry", "sentiment-registry", "sentiment-registry.sentiment.svc")
	tlsSecret("sentiment-geo-tls", "sentiment-geo", "sentiment-geo")
	tlsSecret("sentiment-geo-public-tls", "sentiment.test", "sentiment.test")
	cert, key, err := d.ca.IssueFor("operator", devca.Names{Subject: pkix.Name{CommonName: "operator"}}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(d.ca.CertFile())
	pool.AppendCertsFromPEM(caPEM)
	d.client = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}

	for _, k := range []string{"admin", "publisher", "reader", "geo", "console"} {
		d.secrets[k+" token"] = randomToken(t)
	}
	d.secrets["S3 secret key"] = c.S3Secret
	d.kubectl("create", "secret", "generic", "sentiment-tokens",
		"--from-literal=registry-tokens=admin:ops:"+d.secrets["admin token"]+"\npublisher:ml:"+d.secrets["publisher token"]+"\nreader:edges:"+d.secrets["reader token"]+"\n",
		"--from-literal=edge-reader-token="+d.secrets["reader token"], "--from-literal=geo-internal-token="+d.secrets["geo token"],
		"--from-literal=console-session-key="+d.secrets["console token"])
	d.kubectl("create", "secret", "generic", "sentiment-s3", "--from-literal=access-key="+c.S3Access, "--from-literal=secret-key="+c.S3Secret)

	// The bucket is the operator's to make, as in a cloud account.
	bucket, err := s3.New(s3.Config{Endpoint: fmt.Sprintf("%s:%d", kubecluster.NodeIP, kubecluster.S3Port), AccessKey: c.S3Access,
		SecretKey: c.S3Secret, Bucket: "sentiment-models", Region: "us-east-1", Secure: true,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := model.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d.kubectl("apply", "--server-side", "-k", overlay(t, root, model.MarshalPublicKey(pub)))
	d.kubectl("rollout", "status", "deployment/sentiment-registry", "--timeout=3m")

	// The default model, signed, published and promoted: the edges are
	// Ready once they serve it.
	reg := &regclient.Client{BaseURL: "https://" + d.serviceIP("sentiment-registry") + ":8081", Token: d.secrets["publisher token"],
		HTTP: d.httpClient("sentiment-registry", time.Minute)}
	data := defaultmodel.Artifact()
	digest := model.Digest(data)
	sig, err := model.Sign(priv, digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, "sentiment", "v1", bytes.NewReader(data), int64(len(data)),
		wire.NewVersion{Digest: digest, Signature: &sig, Description: "the default model, on a node"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	reg.Token = d.secrets["admin token"]
	if _, err := reg.Promote(ctx, "sentiment", "production", wire.MoveRequest{Version: "v1", Reason: "first deployment"}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	for _, dep := range []string{"sentiment-edge", "sentiment-geo"} {
		d.kubectl("rollout", "status", "deployment/"+dep, "--timeout=3m")
	}
	return d
}

// overlay writes the node's overlay of the eu-west one and returns its
// directory. What differs from a cloud cluster, and only that: S3 is the
// node's server (its certificate from the deployment's CA, which the
// registry is told to trust), the publishers' key is the test's, the
// per-client rate limits are off (the test's one client address stands
// in for many clients), and the CPU requests fit one 2-core node with
// room for a rolling update's extra pod (limits unchanged).
func overlay(t *testing.T, root string, publishers []byte) string {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "manifests/overlays/eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "publishers.pem"), publishers, 0o644); err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
configMapGenerator:
  - name: sentiment-config
    behavior: merge
    literals:
      - S3_ENDPOINT=%s:%d
  - name: sentiment-publisher-keys
    behavior: replace
    files: [publishers.pem]
patches:
  - target: {kind: Deployment, name: sentiment-registry}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: SSL_CERT_FILE, value: /etc/sentiment/tls/ca.crt}
  - target: {kind: Deployment, name: sentiment-edge}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: EDGE_RATE_LIMIT, value: "0"}
  - target: {kind: Deployment, name: sentiment-geo}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: GEO_RATE_LIMIT, value: "0"}
  - target: {kind: Deployment}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/resources/requests/cpu
        value: 100m
`, base, kubecluster.NodeIP, kubecluster.S3Port)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kubectl runs kubectl in the product's namespace and fails the test on
// an error.
func (d *deployment) kubectl(args ...string) string {
	d.t.Helper()
	out, errs, err := d.c.Kubectl(d.ctx, append([]string{"--namespace", "sentiment"}, args...)...)
	if err != nil {
		d.t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// serviceIP is the Service's cluster IP, once kube-proxy sends its
// first port somewhere: a Deployment is Available a moment before its
// endpoints reach kube-proxy.
func (d *deployment) serviceIP(name string) string {
	d.t.Helper()
	ip := d.kubectl("get", "service", name, "-o", "jsonpath={.spec.clusterIP}")
	port := d.kubectl("get", "service", name, "-o", "jsonpath={.spec.ports[0].port}")
	testenv.Eventually(d.t, time.Minute, "the Service "+name+" has endpoints", func() error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	return ip
}

// httpClient trusts the deployment's CA for serverName and presents the
// operator's client certificate.
func (d *deployment) httpClient(serverName string, timeout time.Duration) *http.Client {
	cfg := d.client.Clone()
	cfg.ServerName = serverName
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func (d *deployment) getJSON(t *testing.T, url, serverName string, v any) {
	t.Helper()
	resp, err := d.httpClient(serverName, 5*time.Second).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s, %v", url, resp.Status, err)
	}
}

// predict asks the geo router for text's label and returns it with the
// region that answered.
func (d *deployment) predict(t *testing.T, geo, text string) (label, region string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: d.publicTLS()}}
	resp, err := client.Post(geo+"/v1/predict", "application/json", strings.NewReader(fmt.Sprintf(`{"text": %q}`, text)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Label string `json:"label"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("predict through the geo Service: %s, %v", resp.Status, err)
	}
	return p.Label, resp.Header.Get("X-Served-Region")
}

// publicTLS is a client's of the public endpoint: it trusts the CA of
// the geo router's certificate and presents none.
func (d *deployment) publicTLS() *tls.Config {
	return &tls.Config{RootCAs: d.client.RootCAs, ServerName: "sentiment.test"}
}

// waitPods waits until every pod of app runs the image tag, and no other.
func (d *deployment) waitPods(t *testing.T, app, tag string) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, app+" pods all on "+tag, func() error {
		out := d.kubectl("get", "pods", "-l", "app.kubernetes.io/name="+app, "-o", `jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}`)
		for _, image := range strings.Fields(out) {
			if !strings.HasSuffix(image, ":"+tag) {
				return fmt.Errorf("a pod still runs %s", image)
			}
		}
		return nil
	})
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// logTails prints the end of every node process's log, for a failure.
func logTails(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		t.Logf("--- %s ends:\n%s", e.Name(), b)
	}
}

// podsStayOnTheNode runs netcheck in a pod: what is on the node (Consul on
// the node's address, the API server behind its Service, the cluster's
// names) must be reachable; a listener beyond the node (in a network
// namespace the test joins to the host, which the host reaches and whose
// replies are routed back) must not be, nor may a name outside
// cluster.local resolve.
func podsStayOnTheNode(t *testing.T, c *kubecluster.Cluster, d *deployment) {
	t.Helper()
	const ns, hostIf, far = "sapk8s-far", "sapk8sfar0", "10.245.0.2:7777"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a run that died
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // the veth pair goes with it
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", "far1", "netns", ns)
	run("ip", "addr", "add", "10.245.0.1/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "-n", ns, "addr", "add", "10.245.0.2/30", "dev", "far1")
	run("ip", "-n", ns, "link", "set", "far1", "up")
	run("ip", "-n", ns, "route", "add", "default", "via", "10.245.0.1")
	listener := exec.Command("ip", "netns", "exec", ns, testenv.GoBinary(t, "./internal/kubecluster/netcheck"), "-listen", far)
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = listener.Process.Kill(); _ = listener.Wait() })
	testenv.Eventually(t, 10*time.Second, "the host reaches the listener beyond the node", func() error {
		conn, err := net.DialTimeout("tcp", far, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})

	if err := c.ImportProgram("./internal/kubecluster/netcheck", "sentiment.local/netcheck:1"); err != nil {
		t.Fatal(err)
	}
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: netcheck}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: netcheck
      image: sentiment.local/netcheck:1
      imagePullPolicy: Never
      args: [-reach, "%s:%d", -reach, "kubernetes.default.svc.cluster.local:443", -resolve, sentiment-registry.sentiment.svc.cluster.local,
             -unreachable, %q, -unresolvable, example.com.]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, kubecluster.NodeIP, kubecluster.ConsulPort, far)
	file := filepath.Join(t.TempDir(), "netcheck.yaml")
	if err := os.WriteFile(file, []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	d.kubectl("apply", "-f", file)
	var phase string
	testenv.Eventually(t, 2*time.Minute, "the netcheck pod ends", func() error {
		phase = d.kubectl("get", "pod", "netcheck", "-o", "jsonpath={.status.phase}")
		if phase != "Succeeded" && phase != "Failed" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	out := d.kubectl("logs", "netcheck")
	t.Logf("from a pod:\n%s", out)
	if phase != "Succeeded" {
		t.Errorf("a pod's reach is not what it should be (phase %s):\n%s", phase, out)
	}
	d.kubectl("delete", "pod", "netcheck", "--wait=false")
}
