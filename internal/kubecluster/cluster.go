// Package kubecluster runs a one-node Kubernetes on this machine, built
// from Debian's packages (etcd, containerd, runc, the CNI plugins,
// nftables) and from the Go module proxy (the control plane, kubelet,
// kube-proxy and CoreDNS that `make tools` builds), with what the
// product's manifests expect on a node beside it: a Consul agent on the
// node's address and an S3-compatible server. manifests/node_test.go runs
// the product's images on it; `make k8s` runs it for a person.
//
// Pods live on one bridge (Bridge, PodCIDR) and can reach nothing beyond
// the node: the kubelet gives them CoreDNS (which forwards nowhere), and
// an nftables rule drops whatever would leave the bridge for another
// interface. Up writes down what it changes on the host before changing
// it (sysctls, fixed host paths, nftables tables, network namespaces);
// Down stops every process of the cluster by PID or cgroup, unmounts,
// removes its cgroups, bridge and tables, and puts the rest back.
package kubecluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/rig"
)

// The node's fixed addresses: its bridge carries the pods, and the node's
// own services (the API server, the kubelet, CoreDNS, Consul, S3) listen
// on the bridge's address, which is the node's address to the pods.
const (
	Bridge      = "sapk8s0"
	NodeIP      = "10.244.0.1"
	PodCIDR     = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/24"
	NodeName    = "sentiment-node"
	APIPort     = 6443
	ConsulPort  = 8500 // the manifests' $(HOST_IP):8500
	S3Port      = 9100
	cgroupRoot  = "sentiment-k8s"
	guardTable  = "sentiment-k8s-guard"
)

// Config says where the cluster keeps its state and how it runs.
type Config struct {
	Dir        string // state directory: certificates, data, logs, PIDs
	RepoRoot   string // this module's root, to build the sandbox image
	Datacenter string // the Consul datacenter of the node's agent
	// Detach leaves the processes running when the caller exits (make
	// k8s); otherwise they get SIGKILL with it.
	Detach bool
	Log    func(format string, args ...any)
}

// Cluster is a running one-node cluster.
type Cluster struct {
	Dir        string
	Kubeconfig string // an admin's kubeconfig
	CA         *devca.CA
	S3Access   string
	S3Secret   string
	cfg        Config
	bins       map[string]string
	exited     map[string]chan struct{} // closed when the process named exits
	children   []*os.Process
}

// components are the binaries Up runs: name → environment override.
var components = map[string]string{
	"etcd": "SAP_ETCD_BIN", "kube-apiserver": "SAP_KUBE_APISERVER_BIN", "kube-controller-manager": "SAP_KUBE_CONTROLLER_MANAGER_BIN",
	"kube-scheduler": "SAP_KUBE_SCHEDULER_BIN", "kubelet": "SAP_KUBELET_BIN", "kube-proxy": "SAP_KUBE_PROXY_BIN",
	"kubectl": "SAP_KUBECTL_BIN", "coredns": "SAP_COREDNS_BIN", "consul": "SAP_CONSUL_BIN", "versitygw": "SAP_VERSITYGW_BIN",
	"containerd": "SAP_CONTAINERD_BIN", "ctr": "SAP_CTR_BIN", "runc": "SAP_RUNC_BIN", "nft": "SAP_NFT_BIN",
}

// Up starts the cluster and returns once its node is Ready. A cluster
// left in cfg.Dir by an earlier run is taken down first. On error what was
// started is taken down again.
func Up(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if _, err := os.Stat(filepath.Join(dir, "host.json")); err == nil {
		cfg.Log("kubecluster: taking down the cluster an earlier run left in %s", dir)
		if err := Down(dir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		return nil, fmt.Errorf("the bridge %s exists: another cluster runs on this machine (make k8s-down takes down the one make k8s started)", Bridge)
	}
	cl := &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), cfg: cfg, bins: map[string]string{}, exited: map[string]chan struct{}{}}
	for name, env := range components {
		p, err := rig.Binary(name, env)
		if err != nil {
			return nil, err
		}
		cl.bins[name] = p
	}
	for _, d := range []string{"logs", "pids", "pki", "cni", "ipam"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := readHostState().save(filepath.Join(dir, "host.json")); err != nil {
		return nil, fmt.Errorf("cannot write down the host's state: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (the cluster was taken down again; logs in %s)", err, filepath.Join(dir, "logs"))
			cl.killChildren() // one just started may not show dir in its command line yet
			if derr := Down(dir); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"the host's network and cgroups", cl.prepareHost},
		{"certificates", cl.certificates},
		{"etcd and the API server", cl.controlPlane},
		{"containerd", cl.containerd},
		{"the kubelet", cl.kubelet},
		{"kube-proxy and CoreDNS", cl.services},
		{"Consul and S3 on the node", cl.nodeServices},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.do(ctx); err != nil {
			return nil, fmt.Errorf("cannot start %s: %w", s.what, err)
		}
		cfg.Log("kubecluster: %s up in %s", s.what, time.Since(start).Round(time.Millisecond))
	}
	return cl, nil
}

// prepareHost makes the bridge with the node's address, lets Service
// traffic be routed between pods, keeps pods from leaving the node, and
// makes the kubelet's cgroup root in every hierarchy.
func (c *Cluster) prepareHost(context.Context) error {
	for _, args := range [][]string{
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for k, v := range map[string]string{"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"} {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("cannot set %s: %w", k, err)
		}
	}
	guard := fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority -10; policy accept;
		iifname "%[2]s" oifname != "%[2]s" drop
		oifname "%[2]s" iifname != "%[2]s" drop
	}
}
`, guardTable, Bridge)
	cmd := exec.Command(c.bins["nft"], "-f", "-")
	cmd.Stdin = strings.NewReader(guard)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	for _, h := range hierarchies() {
		d := filepath.Join(h, cgroupRoot)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cannot make the cgroup %s: %w", d, err)
		}
		if filepath.Base(h) == "cpuset" { // a v1 cpuset takes no task until it has CPUs and memory nodes
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("cannot set %s: %w", filepath.Join(d, f), err)
				}
			}
		}
	}
	return nil
}

// certificates makes the cluster's CA (the kubelet trusts it for the API
// server's client certificate; the deployment's TLS Secrets come from it
// too), the service account signing key and an admin token.
func (c *Cluster) certificates(context.Context) error {
	ca, err := devca.New(filepath.Join(c.Dir, "pki"), "sentiment test cluster CA", 24*time.Hour)
	if err != nil {
		return err
	}
	c.CA = ca
	if _, _, err := ca.IssueFor("apiserver-kubelet-client", devca.Names{Subject: pkix.Name{
		CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}}, 24*time.Hour); err != nil {
		return err
	}
	if err := WriteSigningKey(filepath.Join(c.Dir, "pki")); err != nil {
		return err
	}
	token := randomHex(16)
	if err := os.WriteFile(filepath.Join(c.Dir, "pki", "tokens.csv"), fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", token), 0o600); err != nil {
		return err
	}
	// The API server's certificate is its own self-signed one.
	return os.WriteFile(c.Kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: sentiment, cluster: {server: "https://%s:%d", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: sentiment, context: {cluster: sentiment, user: admin}}]
current-context: sentiment
`, NodeIP, APIPort, token), 0o600)
}

func (c *Cluster) pki(name string) string { return filepath.Join(c.Dir, "pki", name) }

// controlPlane starts etcd, the API server, the controller manager and
// the scheduler.
func (c *Cluster) controlPlane(ctx context.Context) error {
	ports, err := rig.FreePorts(2)
	if err != nil {
		return err
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := c.start("etcd", c.bins["etcd"], "--name", "node", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer, "--initial-cluster", "node="+peer, "--log-level", "warn"); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", client+"/health", 30*time.Second); err != nil {
		return err
	}
	if err := c.start("kube-apiserver", c.bins["kube-apiserver"],
		"--etcd-servers="+client, "--bind-address="+NodeIP, "--advertise-address="+NodeIP,
		fmt.Sprintf("--secure-port=%d", APIPort), "--cert-dir="+c.pki("apiserver"),
		"--token-auth-file="+c.pki("tokens.csv"), "--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.pki("sa.pub"), "--service-account-signing-key-file="+c.pki("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR, "--enable-admission-plugins=PodSecurity",
		"--kubelet-client-certificate="+c.pki("apiserver-kubelet-client.pem"),
		"--kubelet-client-key="+c.pki("apiserver-kubelet-client-key.pem"),
		// The node by its address: its name is nobody's to resolve.
		"--kubelet-preferred-address-types=InternalIP"); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", fmt.Sprintf("https://%s:%d/readyz", NodeIP, APIPort), 60*time.Second); err != nil {
		return err
	}
	if err := c.start("kube-controller-manager", c.bins["kube-controller-manager"], "--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0", "--service-account-private-key-file="+c.pki("sa.key"),
		"--root-ca-file="+c.pki("apiserver/apiserver.crt"), "--use-service-account-credentials=false",
		"--cluster-name=sentiment"); err != nil {
		return err
	}
	return c.start("kube-scheduler", c.bins["kube-scheduler"], "--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--secure-port=0", "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig)
}

// containerd starts containerd with its root, state and sockets in the
// state directory, the CNI bridge on Bridge, and imports the sandbox
// image.
func (c *Cluster) containerd(ctx context.Context) error {
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "sentiment", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "loopback"}
]}
`, Bridge, PodCIDR, NodeIP, filepath.Join(c.Dir, "ipam"))
	if err := os.WriteFile(filepath.Join(c.Dir, "cni", "10-sentiment.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This machine lets no process lower its OOM score (a sandbox runs with
  # -998 otherwise): keep every container's at containerd's own or above.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(c.Dir, "containerd", "root"), filepath.Join(c.Dir, "containerd", "state"), c.socket(), c.socket()+".ttrpc",
		PauseImage, c.bins["runc"], filepath.Join(c.Dir, "cni"))
	path, err := c.writeConfig("containerd.toml", config)
	if err != nil {
		return err
	}
	if err := c.start("containerd", c.bins["containerd"], "--config", path); err != nil {
		return err
	}
	if err := c.wait(ctx, "containerd", 30*time.Second, func() error {
		_, err := c.Ctr("version")
		return err
	}); err != nil {
		return err
	}
	return c.ImportProgram("./internal/kubecluster/pause", PauseImage)
}

// PauseImage is the sandbox image: a static binary of this module that
// holds a pod's namespaces, in an image of its own (no registry is
// reached for it).
const PauseImage = "sentiment.local/pause:1"

func (c *Cluster) socket() string { return filepath.Join(c.Dir, "containerd.sock") }

// Ctr runs containerd's ctr in the namespace the kubelet uses.
func (c *Cluster) Ctr(args ...string) ([]byte, error) {
	out, err := exec.Command(c.bins["ctr"], append([]string{"--address", c.socket(), "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// ImportImage imports an OCI archive into the node's image store, under
// the name in its index (the kubelet finds it there; nothing is pulled).
func (c *Cluster) ImportImage(archive string) error {
	_, err := c.Ctr("images", "import", "--no-unpack=false", archive)
	return err
}

// kubelet writes the kubelet's configuration and starts it, then waits
// for the node to be Ready.
func (c *Cluster) kubelet(ctx context.Context) error {
	ports, err := rig.FreePorts(1)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[2]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[3]q}
authorization: {mode: Webhook}
# This machine has cgroup v1 and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%[4]s
failSwapOn: false
containerRuntimeEndpoint: unix://%[5]s
# Pods resolve names through CoreDNS on the node, which forwards nowhere:
# never the host's resolver.
clusterDomain: cluster.local
clusterDNS: [%[1]s]
resolvConf: ""
podLogsDir: %[6]q
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 30
`, NodeIP, ports[0], c.CA.CertFile(), cgroupRoot, c.socket(), filepath.Join(c.Dir, "pod-logs"))
	path, err := c.writeConfig("kubelet.yaml", config)
	if err != nil {
		return err
	}
	if err := c.start("kubelet", c.bins["kubelet"], "--config="+path, "--kubeconfig="+c.Kubeconfig,
		"--root-dir="+filepath.Join(c.Dir, "kubelet"), "--cert-dir="+filepath.Join(c.Dir, "kubelet", "pki"),
		"--hostname-override="+NodeName, "--node-ip="+NodeIP); err != nil {
		return err
	}
	return c.wait(ctx, "kubelet", 90*time.Second, func() error {
		out, _, err := c.Kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if out != "True" {
			return fmt.Errorf("node Ready=%q", out)
		}
		return nil
	})
}

// services starts kube-proxy (nftables) and CoreDNS on the node's
// address, answering for cluster.local only.
func (c *Cluster) services(ctx context.Context) error {
	ports, err := rig.FreePorts(3)
	if err != nil {
		return err
	}
	proxy := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %s
clusterCIDR: %s
clientConnection: {kubeconfig: %q}
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, NodeName, PodCIDR, c.Kubeconfig, ports[0], ports[1])
	path, err := c.writeConfig("kube-proxy.yaml", proxy)
	if err != nil {
		return err
	}
	if err := c.start("kube-proxy", c.bins["kube-proxy"], "--config="+path); err != nil {
		return err
	}
	corefile := fmt.Sprintf(`cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind %s
    errors
    health 127.0.0.1:%d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s sentiment
        pods insecure
    }
    cache 30
}
`, NodeIP, ports[2], c.Kubeconfig)
	path, err = c.writeConfig("Corefile", corefile)
	if err != nil {
		return err
	}
	if err := c.start("coredns", c.bins["coredns"], "-conf", path); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-proxy", fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[0]), 30*time.Second); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "coredns", fmt.Sprintf("http://127.0.0.1:%d/health", ports[2]), 30*time.Second)
}

// nodeServices starts what the manifests expect on a node: a Consul agent
// on the node's address (a dev server of the configured datacenter) and
// an S3 server over TLS from the cluster's CA.
func (c *Cluster) nodeServices(ctx context.Context) error {
	ports, err := rig.FreePorts(3)
	if err != nil {
		return err
	}
	if err := c.start("consul", c.bins["consul"], "agent", "-dev", "-datacenter", c.cfg.Datacenter, "-node", NodeName,
		"-bind", "127.0.0.1", "-client", NodeIP, "-http-port", fmt.Sprint(ConsulPort), "-dns-port", "-1",
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-serf-lan-port", fmt.Sprint(ports[0]), "-serf-wan-port", fmt.Sprint(ports[1]),
		"-server-port", fmt.Sprint(ports[2]), "-hcl", "disable_update_check = true", "-log-level", "warn",
		"-data-dir", filepath.Join(c.Dir, "consul")); err != nil {
		return err
	}
	cert, key, err := c.CA.IssueFor("s3", devca.Names{Subject: pkix.Name{CommonName: "s3"}, IPs: []net.IP{net.ParseIP(NodeIP)}}, 24*time.Hour)
	if err != nil {
		return err
	}
	c.S3Access, c.S3Secret = "sentiment-test", randomHex(16)
	for _, d := range []string{"s3-data", "s3-versions"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "pki", "s3.env"), fmt.Appendf(nil, "S3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\n", c.S3Access, c.S3Secret), 0o600); err != nil {
		return err
	}
	// versitygw reads its root credentials from its environment.
	if err := c.startWithEnv("versitygw", c.bins["versitygw"], []string{"ROOT_ACCESS_KEY_ID=" + c.S3Access, "ROOT_SECRET_ACCESS_KEY=" + c.S3Secret},
		"--port", fmt.Sprintf("%s:%d", NodeIP, S3Port), "--cert", cert, "--key", key,
		"--health", "/health", "posix", "--versioning-dir", filepath.Join(c.Dir, "s3-versions"), filepath.Join(c.Dir, "s3-data")); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "consul", fmt.Sprintf("http://%s:%d/v1/status/leader", NodeIP, ConsulPort), 60*time.Second); err != nil {
		return err
	}
	return c.waitHTTP(ctx, "versitygw", fmt.Sprintf("https://%s:%d/health", NodeIP, S3Port), 30*time.Second)
}

// writeConfig writes a process's configuration file into the state
// directory and returns its path.
func (c *Cluster) writeConfig(name, content string) (string, error) {
	path := filepath.Join(c.Dir, name)
	return path, os.WriteFile(path, []byte(content), 0o644)
}

// Kubectl runs kubectl with the admin's kubeconfig.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, c.bins["kubectl"], append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// wait polls ready until it passes, the process named exits or timeout
// passes.
func (c *Cluster) wait(ctx context.Context, name string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = ready(); last == nil {
			return nil
		}
		if !c.running(name) {
			return fmt.Errorf("%s exited (%v); its log ends:\n%s", name, last, c.logTail(name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %v; its log ends:\n%s", name, timeout, last, c.logTail(name))
}

// waitHTTP waits for url to answer 200 (https: the server's certificate
// is not checked; the API server's is its own, S3's from the cluster CA).
func (c *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return c.wait(ctx, name, timeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

// Down takes down the cluster whose state is in dir: the kubelet first (so
// it restarts nothing), the containers and their shims, the node's other
// processes; then its mounts, cgroups, bridge and nftables tables; then
// the host's sysctls, network namespaces and fixed paths as they were.
// It keeps dir's logs and removes the rest. Taking down a cluster that
// is not there does nothing.
func Down(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	state, err := loadHostState(filepath.Join(dir, "host.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read what the cluster changed on the host: %w", err)
	}
	if pid, ok := readPID(dir, "kubelet"); ok {
		stopPID(pid, dir, 5*time.Second)
	}
	var errs []error
	killCgroups()
	for _, name := range []string{"kube-proxy", "coredns", "kube-scheduler", "kube-controller-manager", "containerd", "consul", "versitygw", "kube-apiserver", "etcd"} {
		if pid, ok := readPID(dir, name); ok {
			stopPID(pid, dir, 5*time.Second)
		}
	}
	for _, pid := range clusterProcesses(dir) { // shims, and whatever else is left
		stopPID(pid, dir, time.Second)
	}
	killCgroups()
	for _, m := range mountsUnder(dir) {
		if err := unmount(m); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", Bridge, err, out))
		}
	}
	if err := state.restore(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 { // keep host.json: a second Down tries again
		return errors.Join(errs...)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "logs" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
