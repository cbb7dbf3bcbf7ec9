package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

const (
	modelName = "sentiment"
	channel   = "production"
	// Tokens of the harness's registry: one admin, one reader shared by the
	// fleet (as deployed).
	adminToken  = "scale-admin-token-0123456789"
	readerToken = "scale-reader-token-0123456789"
)

// harness is the running fleet.
type harness struct {
	cfg      config
	out      io.Writer
	consul   *rig.ConsulCluster
	s3       *rig.S3Server
	registry *rig.Process
	regURL   string
	admin    *regclient.Client
	priv     ed25519.PrivateKey
	keysFile string
	edges    []*edgeProc
	fleet    *fleet
}

// edgeProc is one real edge process.
type edgeProc struct {
	region, addr string
	proc         *rig.Process
}

func run(cfg config, out io.Writer) (*report, error) {
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "sentiment-scale-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	h := &harness{cfg: cfg, out: out}
	defer h.stop()
	if err := h.start(); err != nil {
		return nil, err
	}
	return h.measure()
}

func (h *harness) start() error {
	if err := os.MkdirAll(filepath.Join(h.cfg.Dir, "logs"), 0o755); err != nil {
		return err
	}
	if h.cfg.BinDir == "" {
		h.cfg.BinDir = filepath.Join(h.cfg.Dir, "bin")
		for _, pkg := range []string{"./cmd/edge", "./cmd/registry"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(h.cfg.BinDir, filepath.Base(pkg)), pkg)
			cmd.Dir = moduleRoot()
			if msg, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("cannot build %s: %v\n%s", pkg, err, msg)
			}
		}
	}
	pub, priv, err := model.GenerateKey()
	if err != nil {
		return err
	}
	h.priv, h.keysFile = priv, filepath.Join(h.cfg.Dir, "trusted.pem")
	if err := os.WriteFile(h.keysFile, model.MarshalPublicKey(pub), 0o644); err != nil {
		return err
	}
	dcs := make([]string, len(h.cfg.Regions))
	for i, r := range h.cfg.Regions {
		dcs[i] = "dc-" + r
	}
	if h.consul, err = rig.StartConsul(filepath.Join(h.cfg.Dir, "consul"), dcs...); err != nil {
		return err
	}
	if h.s3, err = rig.StartS3(filepath.Join(h.cfg.Dir, "s3")); err != nil {
		return err
	}
	if err := h.startRegistry(); err != nil {
		return err
	}
	for _, region := range h.cfg.Regions {
		for i := range h.cfg.Edges {
			if err := h.startEdge(region, i); err != nil {
				return err
			}
		}
	}
	h.fleet = newFleet(h)
	return nil
}

func (h *harness) startRegistry() error {
	bucket, err := h.s3.NewBucket(context.Background(), "scale")
	if err != nil {
		return err
	}
	ports, err := rig.FreePorts(1)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	h.regURL = "http://" + addr
	args := []string{"-listen", addr, "-store", "s3://" + bucket, "-s3-endpoint", h.s3.Endpoint(), "-shutdown-delay", "0s",
		"-trusted-keys", h.keysFile, "-max-blob-streams", strconv.Itoa(h.cfg.Streams), "-log-level", "warn"}
	env := []string{"REGISTRY_TOKENS=admin:scale:" + adminToken + ",reader:fleet:" + readerToken,
		"REGISTRY_S3_ACCESS_KEY=" + h.s3.AccessKey, "REGISTRY_S3_SECRET_KEY=" + h.s3.SecretKey}
	h.admin = &regclient.Client{BaseURL: h.regURL, Token: adminToken, HTTP: &http.Client{Timeout: 10 * time.Minute}}
	h.registry, err = rig.StartHTTPService("registry", filepath.Join(h.cfg.BinDir, "registry"), args, env,
		filepath.Join(h.cfg.Dir, "logs", "registry.log"), h.regURL+"/health/ready", nil)
	return err
}

func (h *harness) startEdge(region string, i int) error {
	ports, err := rig.FreePorts(2)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	name := fmt.Sprintf("edge-%s-%d", region, i)
	args := []string{"-listen", addr, "-region", region, "-model", modelName, "-registry", h.regURL,
		"-consul", h.consul.Agent("dc-" + region).HTTPAddr(), "-cache-dir", filepath.Join(h.cfg.Dir, "caches", name),
		"-blob-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]), "-blob-slots", strconv.Itoa(h.cfg.Slots),
		"-trusted-keys", h.keysFile, "-rate-limit", "0", "-shutdown-delay", "0s", "-log-level", "warn"}
	p, err := rig.StartHTTPService(name, filepath.Join(h.cfg.BinDir, "edge"), args, []string{"EDGE_REGISTRY_TOKEN=" + readerToken},
		filepath.Join(h.cfg.Dir, "logs", name+".log"), "http://"+addr+"/health/live", nil)
	if err != nil {
		return err
	}
	h.edges = append(h.edges, &edgeProc{region: region, addr: addr, proc: p})
	return nil
}

func (h *harness) stop() {
	if h.fleet != nil {
		h.fleet.stop()
	}
	for _, e := range h.edges {
		e.proc.Stop(5 * time.Second)
	}
	if h.registry != nil {
		h.registry.Stop(5 * time.Second)
	}
	if h.s3 != nil {
		h.s3.Stop()
	}
	if h.consul != nil {
		h.consul.Stop()
	}
}

// publish makes, signs and publishes version n's artifact.
func (h *harness) publish(n int) (wire.Version, error) {
	data, err := rig.LargeArtifact(h.cfg.Bits, uint64(n+1))
	if err != nil {
		return wire.Version{}, err
	}
	digest := model.Digest(data)
	sig, err := model.Sign(h.priv, digest)
	if err != nil {
		return wire.Version{}, err
	}
	return h.admin.Publish(context.Background(), modelName, fmt.Sprintf("v%d", n), bytes.NewReader(data), int64(len(data)),
		wire.NewVersion{Digest: digest, Signature: &sig, Description: "scale harness artifact"})
}

func (h *harness) promote(version string) error {
	_, err := h.admin.Promote(context.Background(), modelName, channel, wire.MoveRequest{Version: version, Reason: "scale harness"})
	return err
}

// edgeDigest is the digest an edge serves ("" when none or unreachable).
func edgeDigest(client *http.Client, addr string) string {
	resp, err := client.Get("http://" + addr + "/health/ready")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var ready struct{ Digest string }
	if json.NewDecoder(resp.Body).Decode(&ready) != nil {
		return ""
	}
	return ready.Digest
}

// scrape reads a Prometheus text page into sample → value.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// sum adds the samples of a metric over its labels.
func sum(samples map[string]float64, name string) float64 {
	var total float64
	for k, v := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// rss is a process's resident memory in bytes (0 if unreadable).
func rss(pid int) int64 {
	n, _ := rig.ProcStatus(pid, "VmRSS:")
	return n
}

// moduleRoot is the directory of go.mod, found from the working directory.
func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// waitAll polls until every edge serves digest, recording when each did.
func (h *harness) waitEdges(ctx context.Context, digest string, since time.Time, served func(region string, d time.Duration)) error {
	client := &http.Client{Timeout: 2 * time.Second}
	pending := map[*edgeProc]bool{}
	for _, e := range h.edges {
		pending[e] = true
	}
	for len(pending) > 0 {
		for e := range pending {
			if edgeDigest(client, e.addr) == digest {
				served(e.region, time.Since(since))
				delete(pending, e)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d edges did not serve %s in time", len(pending), digest)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
