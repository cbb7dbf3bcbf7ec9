// Command stack runs the whole product on one machine. By default (`make
// run`) it needs no other service: a registry on a local directory, the
// default model published and promoted, one edge per region following it,
// and the geo router in front (static discovery with active health
// probing). With -real (`make stack`) the same topology runs on the real
// services: one Consul datacenter per region joined over WAN, the S3
// server (versitygw) holding the registry, edges registered in their
// region's datacenter and the geo router following Consul. Ctrl-C stops
// everything.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/model/reviewsmodel"
)

// Config is the local stack's layout.
type Config struct {
	BinDir       string
	StateDir     string
	Regions      []string
	RegistryPort int
	EdgePort     int // first edge port; one per region from here
	EdgeGRPCPort int // first edge gRPC port; one per region from here
	GeoGRPCPort  int
	GeoPort      int
	Model        string
	// SecondModel is served by every edge beside Model (the example
	// "reviews" model); empty: one model.
	SecondModel string
	// Real runs Consul and the S3 server (built by `make tools`).
	Real bool
	// MMDB is the country database for the geo router; empty for none.
	MMDB string
	// TLS runs every service and hop over TLS with a throwaway CA.
	TLS bool
	// ONNXRuntime is the library the edges serve ONNX bundles with; empty:
	// they serve built-in models only.
	ONNXRuntime string
}

// child is one running service.
type child struct {
	name   string
	url    string
	proc   *rig.Process
	client *http.Client // trusts the stack's CA, if any
}

func main() {
	var cfg Config
	var regions string
	flag.StringVar(&cfg.BinDir, "bin", "bin", "directory holding the registry and edge binaries")
	flag.StringVar(&cfg.StateDir, "dir", ".run", "state directory (registry data, edge caches, logs, tokens)")
	flag.StringVar(&regions, "regions", "us-east,eu-west,ap-south", "regions to run an edge for")
	flag.IntVar(&cfg.RegistryPort, "registry-port", 8081, "registry port")
	flag.IntVar(&cfg.EdgePort, "edge-port", 8091, "first edge port")
	flag.IntVar(&cfg.EdgeGRPCPort, "edge-grpc-port", 9091, "first edge gRPC port (the Open Inference Protocol over gRPC)")
	flag.IntVar(&cfg.GeoGRPCPort, "geo-grpc-port", 9090, "geo router gRPC port (the one endpoint gRPC clients use)")
	flag.IntVar(&cfg.GeoPort, "geo-port", 8080, "geo router port (the one endpoint clients use)")
	flag.StringVar(&cfg.Model, "model", "sentiment", "model name")
	flag.StringVar(&cfg.SecondModel, "second-model", "reviews", "name of the second model every edge serves (the example long-review model); empty: none")
	flag.BoolVar(&cfg.Real, "real", false, "run on real Consul datacenters and the S3 server (make tools first)")
	flag.StringVar(&cfg.MMDB, "mmdb", "", "country MMDB for the geo router (make geoip)")
	flag.BoolVar(&cfg.TLS, "tls", false, "TLS on every listener and hop (mutual between services), with a throwaway CA made in DIR/tls")
	flag.StringVar(&cfg.ONNXRuntime, "onnxruntime-lib", onnxrt.CachedLibrary(), "ONNX Runtime's library for the edges (make onnxruntime); empty: ONNX models are refused")
	flag.Parse()
	cfg.Regions = config.List(regions)
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func run(cfg Config) error {
	logs := filepath.Join(cfg.StateDir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	tokens, err := loadTokens(filepath.Join(cfg.StateDir, "tokens"))
	if err != nil {
		return err
	}
	backend, err := startBackend(cfg)
	if err != nil {
		return err
	}
	defer backend.stop()
	var children []*child
	defer func() { // before backend.stop: edges deregister from Consul
		for i := len(children) - 1; i >= 0; i-- {
			stop(children[i])
		}
	}()
	var certs *pki
	if cfg.TLS {
		names := []string{"registry", "geo"}
		for _, region := range cfg.Regions {
			names = append(names, "edge-"+region)
		}
		if certs, err = newPKI(filepath.Join(cfg.StateDir, "tls"), names); err != nil {
			return fmt.Errorf("cannot make the stack's CA: %w", err)
		}
	}
	regURL := fmt.Sprintf("%s://127.0.0.1:%d", certs.scheme(), cfg.RegistryPort)
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "sentctl.env"), []byte(certs.sentctlEnv(regURL)), 0o600); err != nil {
		return err
	}
	// The tokens file also says where the registry is, so `set -a; .
	// .run/tokens` is all sentctl needs, whatever the ports.
	if err := tokens.write(filepath.Join(cfg.StateDir, "tokens"), certs.sentctlEnv(regURL)); err != nil {
		return err
	}
	key, err := loadSigningKey(cfg.StateDir)
	if err != nil {
		return err
	}
	// Tokens go in the environment, never on command lines (ps shows those).
	regArgs := append([]string{"-listen", fmt.Sprintf("127.0.0.1:%d", cfg.RegistryPort), "-trusted-keys", key.pubPath, "-shutdown-delay", "0s",
		"-geo", fmt.Sprintf("%s://127.0.0.1:%d", certs.scheme(), cfg.GeoPort)}, backend.registryArgs...)
	if !cfg.Real {
		// Without Consul the rollout controller reads the edges it is told.
		var edges []string
		for i, region := range cfg.Regions {
			edges = append(edges, fmt.Sprintf("%s=%s://127.0.0.1:%d", region, certs.scheme(), cfg.EdgePort+i))
		}
		regArgs = append(regArgs, "-edges", strings.Join(edges, ","))
	}
	reg, err := start(cfg, certs, "registry", regURL, append(regArgs, certs.registryArgs()...),
		append([]string{"REGISTRY_TOKENS=" + tokens.all()}, backend.registryEnv...))
	if err != nil {
		return err
	}
	children = append(children, reg)
	if err := waitReady(reg); err != nil {
		return err
	}
	version, err := publishDefault(reg, tokens.admin, cfg.Model, defaultmodel.Artifact(), "default model (SST-2 and IMDB)", key)
	if err != nil {
		return err
	}
	// The second model every edge serves beside the default one, from its
	// own channel: promoting one leaves the other alone.
	models := cfg.Model + "=production"
	if cfg.SecondModel != "" {
		if _, err := publishDefault(reg, tokens.admin, cfg.SecondModel, reviewsmodel.Artifact(), "long-review model (IMDB)", key); err != nil {
			return err
		}
		models += "," + cfg.SecondModel + "=production"
	}
	var grpcURLs [][2]string
	for i, region := range cfg.Regions {
		addr := fmt.Sprintf("127.0.0.1:%d", cfg.EdgePort+i)
		grpcAddr := fmt.Sprintf("127.0.0.1:%d", cfg.EdgeGRPCPort+i)
		grpcURLs = append(grpcURLs, [2]string{"edge-" + region + " gRPC", "grpc://" + grpcAddr})
		e, err := start(cfg, certs, "edge-"+region, certs.scheme()+"://"+addr, append(append([]string{
			"-listen", addr, "-grpc-listen", grpcAddr, "-region", region, "-models", models,
			"-registry", regURL, "-cache-dir", filepath.Join(cfg.StateDir, "edge-"+region), "-trusted-keys", key.pubPath,
			"-trusted-proxies", "127.0.0.1/32", "-shutdown-delay", "0s", "-onnxruntime-lib", cfg.ONNXRuntime,
		}, backend.edgeArgs(region)...), certs.edgeArgs("edge-"+region)...), []string{"EDGE_REGISTRY_TOKEN=" + tokens.reader})
		if err != nil {
			return err
		}
		children = append(children, e)
	}
	geoAddr := fmt.Sprintf("127.0.0.1:%d", cfg.GeoPort)
	// The local stack's router stands where a gateway that knows its users
	// would: this machine's clients may name themselves (X-Forwarded-For)
	// and their routing key, so the README's rollout example can play many
	// users from one shell. A deployment trusts only its own gateways.
	geoGRPC := fmt.Sprintf("127.0.0.1:%d", cfg.GeoGRPCPort)
	grpcURLs = append([][2]string{{"geo gRPC", "grpc://" + geoGRPC}}, grpcURLs...)
	geoArgs := append([]string{"-listen", geoAddr, "-grpc-listen", geoGRPC, "-default-region", cfg.Regions[0], "-trusted-proxies", "127.0.0.1/32",
		"-shutdown-delay", "0s"}, certs.geoArgs()...)
	if cfg.MMDB != "" {
		geoArgs = append(geoArgs, "-mmdb", cfg.MMDB)
	}
	g, err := start(cfg, certs, "geo", certs.scheme()+"://"+geoAddr, append(geoArgs, backend.geoArgs...), nil)
	if err != nil {
		return err
	}
	children = append(children, g)
	for _, c := range children[1:] {
		if err := waitReady(c); err != nil {
			return err
		}
	}
	if err := waitRoutes(g, len(cfg.Regions)); err != nil {
		return err
	}
	printBanner(cfg, certs, children, append(grpcURLs, backend.urls...), version)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	exited := make(chan string, len(children))
	for _, c := range children {
		go func() { <-c.proc.Exited(); exited <- c.name }()
	}
	select {
	case <-sigs:
		fmt.Println("\nstopping…")
		return nil
	case name := <-exited:
		return fmt.Errorf("%s exited; see %s", name, filepath.Join(logs, name+".log"))
	}
}

type tokenSet struct{ admin, publisher, reader string }

func (t tokenSet) all() string {
	return "admin:local-admin:" + t.admin + ",publisher:local-ml:" + t.publisher + ",reader:local-edge:" + t.reader
}

// loadTokens keeps the local tokens across runs in the state directory.
func loadTokens(path string) (tokenSet, error) {
	if data, err := os.ReadFile(path); err == nil {
		var t tokenSet
		for _, line := range strings.Split(string(data), "\n") {
			k, v, _ := strings.Cut(line, "=")
			switch k {
			case "SENTCTL_ADMIN_TOKEN":
				t.admin = v
			case "SENTCTL_PUBLISHER_TOKEN":
				t.publisher = v
			case "SENTCTL_READER_TOKEN":
				t.reader = v
			}
		}
		if t.admin != "" && t.publisher != "" && t.reader != "" {
			return t, nil
		}
	}
	t := tokenSet{admin: randomToken(), publisher: randomToken(), reader: randomToken()}
	return t, t.write(path, "")
}

// write keeps the tokens, and the lines of extra (the registry's address
// and TLS files), in the state directory.
func (t tokenSet) write(path, extra string) error {
	content := fmt.Sprintf("SENTCTL_ADMIN_TOKEN=%s\nSENTCTL_PUBLISHER_TOKEN=%s\nSENTCTL_READER_TOKEN=%s\n%s", t.admin, t.publisher, t.reader, extra)
	return os.WriteFile(path, []byte(content), 0o600)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func start(cfg Config, certs *pki, name, url string, args, env []string) (*child, error) {
	bin := filepath.Join(cfg.BinDir, strings.SplitN(name, "-", 2)[0])
	p := &rig.Process{Name: name, Path: bin, Args: args, Env: env, LogPath: filepath.Join(cfg.StateDir, "logs", name+".log")}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("%w; run `make build` first", err)
	}
	return &child{name: name, url: url, proc: p, client: certs.httpClient(time.Second)}, nil
}

func stop(c *child) { c.proc.Stop(10 * time.Second) }

func waitReady(c *child) error {
	return c.proc.WaitFor(30*time.Second, func() error {
		resp, err := c.client.Get(c.url + "/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s/health/ready: %s", c.url, resp.Status)
		}
		return nil
	})
}

// waitRoutes waits until the geo router sees a healthy edge in every
// region (through Consul, with -real), so the first request after the
// banner goes where the client expects.
func waitRoutes(geo *child, regions int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var route struct {
			Regions []struct {
				Edges []string `json:"edges"`
			} `json:"regions"`
		}
		if resp, err := geo.client.Get(geo.url + "/v1/route"); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&route)
			resp.Body.Close()
			ready := 0
			for _, r := range route.Regions {
				if len(r.Edges) > 0 {
					ready++
				}
			}
			if err == nil && ready == regions {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the geo router did not see an edge in every region within 60s")
}

// publishDefault publishes an embedded model (data) as name's version v1
// and promotes it to production, unless production already has a target.
func publishDefault(reg *child, token, name string, data []byte, description string, key signingKey) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &regclient.Client{BaseURL: reg.url, Token: token, HTTP: &http.Client{Transport: reg.client.Transport, Timeout: time.Minute}}
	if ch, err := c.GetChannel(ctx, name, "production", 0, 0); err == nil && ch.Global != "" {
		v, err := c.GetVersion(ctx, name, ch.Global)
		if err != nil {
			return "", fmt.Errorf("cannot read %s/%s: %w", name, ch.Global, err)
		}
		if v.SignedBy == "" {
			return "", fmt.Errorf("production serves the unsigned %s/%s, which the edges now refuse: the state directory is from an older version; remove it (-dir)", name, ch.Global)
		}
		return ch.Global, nil
	}
	digest := model.Digest(data)
	sig, err := model.Sign(key.priv, digest)
	if err != nil {
		return "", err
	}
	_, err = c.Publish(ctx, name, "v1", bytes.NewReader(data), int64(len(data)),
		wire.NewVersion{Digest: digest, Signature: &sig, Description: description + ", signed by the local stack's key"})
	if err != nil && !regclient.IsStatus(err, http.StatusConflict) {
		return "", fmt.Errorf("cannot publish %s/v1: %w", name, err)
	}
	if _, err := c.Promote(ctx, name, "production", wire.MoveRequest{Version: "v1", Reason: "make run"}); err != nil {
		return "", fmt.Errorf("cannot promote %s/v1: %w", name, err)
	}
	return "v1", nil
}

// secondModelExample is the banner's line asking the second model.
func secondModelExample(cfg Config, curl, geo string) string {
	if cfg.SecondModel == "" {
		return ""
	}
	return fmt.Sprintf("  %s -s %s/v1/predict -d '{\"model\": %q, \"text\": \"a long, slow film that stays with you\"}'\n", curl, geo, cfg.SecondModel)
}

// printBanner says what runs where: the services' URLs, then the other
// addresses (the edges' gRPC listeners, the backends).
func printBanner(cfg Config, certs *pki, children []*child, backendURLs [][2]string, version string) {
	models := cfg.Model
	if cfg.SecondModel != "" {
		models += " and " + cfg.SecondModel
	}
	fmt.Printf("\nSentiment Analyzer Pro is running (models %s; %s production = %s):\n\n", models, cfg.Model, version)
	for _, c := range children {
		fmt.Printf("  %-21s %s\n", c.name, c.url)
	}
	for _, u := range backendURLs {
		fmt.Printf("  %-21s %s\n", u[0], u[1])
	}
	geo := children[len(children)-1].url
	curl, security := "curl", "Every listener is plain HTTP on loopback (make stack runs TLS on every hop)."
	if certs != nil {
		curl = "curl --cacert " + certs.ca
		security = "Every listener and hop is TLS, verified against the throwaway CA " + certs.ca + ";\nthe registry and the edges require client certificates (sentctl.env names one)."
	}
	fmt.Printf(`
Try it (the geo router sends you to the nearest healthy region; X-Region picks one):

  %[6]s -si %[1]s/v1/predict -d '{"text": "a wonderful, moving film", "explain": true}'
  %[6]s -si %[1]s/v1/predict -H 'X-Region: ap-south' -d '{"text": "not good at all"}'
  %[6]s -s %[1]s/v2/models/%[2]s/infer -d '{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["great fun", "a dull mess"]}]}'
  %[6]s -s %[1]s/v1/route -H 'X-Region: eu-west'
%[10]s
Publish and promote a model (tokens are in %[3]s, the registry's address
in %[7]s; the registry and the edges trust only models signed with
%[5]s):

  set -a; . %[3]s; . %[7]s; set +a
  bin/sentctl sign --key %[5]s --model my.sapm
  SENTCTL_TOKEN=$SENTCTL_PUBLISHER_TOKEN bin/sentctl publish --model %[2]s --version v2 --file my.sapm
  SENTCTL_TOKEN=$SENTCTL_ADMIN_TOKEN bin/sentctl promote --model %[2]s --version v2 --regions eu-west

The console: %[9]s/ui/ (log in with SENTCTL_ADMIN_TOKEN from %[3]s).

%[8]s
Logs are in %[4]s. Ctrl-C stops everything.
`, geo, cfg.Model, filepath.Join(cfg.StateDir, "tokens"), filepath.Join(cfg.StateDir, "logs"), filepath.Join(cfg.StateDir, "publisher.key"),
		curl, filepath.Join(cfg.StateDir, "sentctl.env"), security, children[0].url, secondModelExample(cfg, curl, geo))
}
