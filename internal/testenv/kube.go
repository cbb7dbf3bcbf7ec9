package testenv

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/kubecluster"
	"github.com/sentimentpro/sentiment/internal/rig"
)

// KubeAPI is a real Kubernetes API server (kube-apiserver on etcd, both
// on loopback), with RBAC, PodSecurity admission and a static admin token:
// what the manifests are applied to server side. It has no node: objects
// are admitted and stored, no pod runs.
type KubeAPI struct {
	URL        string
	Kubeconfig string // an admin's kubeconfig for it
	kubectl    string
}

// StartKubeAPI starts etcd and kube-apiserver for the test (`make tools`
// builds the API server and kubectl; etcd is Debian's etcd-server) and
// stops them in t.Cleanup. It skips t in -short mode.
func StartKubeAPI(t testing.TB) *KubeAPI {
	t.Helper()
	skipShort(t)
	etcd := binary(t, "etcd", "SAP_ETCD_BIN")
	apiserver := binary(t, "kube-apiserver", "SAP_KUBE_APISERVER_BIN")
	kubectl := binary(t, "kubectl", "SAP_KUBECTL_BIN")
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	StartHTTPService(t, "etcd", etcd, []string{"--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer, "--initial-cluster", "test=" + peer, "--log-level", "warn"},
		nil, client+"/health")

	token := randomHex(t)
	writeFile(t, filepath.Join(dir, "tokens.csv"), fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", token))
	if err := kubecluster.WriteSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	StartTLSService(t, "kube-apiserver", apiserver, []string{
		"--etcd-servers=" + client, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]), "--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"), "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--enable-admission-plugins=PodSecurity",
		// No node, no kubernetes Service endpoints to keep: on loopback the
		// reconciler refuses to start.
		"--endpoint-reconciler-type=none",
	}, nil, url+"/readyz", insecure)

	// The API server's certificate is its own self-signed one, on loopback.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, url, token))
	return &KubeAPI{URL: url, Kubeconfig: kubeconfig, kubectl: kubectl}
}

// Kubectl runs kubectl against the API server and returns its standard
// output and standard error apart.
func (k *KubeAPI) Kubectl(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(k.kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// PrometheusOperatorCRDs is the directory of the Prometheus Operator's
// published CRDs that `make tools` copies from its pinned module.
func PrometheusOperatorCRDs(t testing.TB) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(cachedFile(t, "SAP_PROMETHEUS_OPERATOR_CRDS", "bin/prometheus-operator-crds", "make tools"))
	if err != nil {
		t.Fatal(err)
	}
	return dir // kubectl reads a symbolic link as a file
}

func binary(t testing.TB, name, env string) string {
	t.Helper()
	p, err := rig.Binary(name, env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
