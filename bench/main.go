// Command bench is the load harness: it starts the real edge binary and a
// minimal fasthttp server that returns a constant JSON body (the ceiling of
// this machine), drives both with the same closed-loop load of varied
// sentences for a fixed time, the two taking turns every -slice so that
// both see the same moments of a noisy machine, then measures the edge's latency at half its
// maximum throughput with an open-loop load, and prints the figures and
// the ratios edge/ceiling, geo/direct and tls/plain (the geo front door
// with and without TLS).
//
//	go run ./bench -rounds 6 -duration 5s
//
// With -target, it measures one URL; with -reference as well, the two
// take turns and it prints target/reference (A/B of two builds):
//
//	go run ./bench -target http://127.0.0.1:8081/v1/predict -reference http://127.0.0.1:8082/v1/predict
//
// It targets only 127.0.0.1 and stops by itself.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/forward"
	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func main() {
	var (
		edgeBin   = flag.String("edge", "", "edge binary (default: go build ./cmd/edge)")
		geoBin    = flag.String("geo", "", "geo router binary (default: go build ./cmd/geo)")
		corpus    = flag.String("corpus", "../shared/data/sst2/dev.tsv", "TSV with a text column for request bodies")
		duration  = flag.Duration("duration", 5*time.Second, "measurement time per phase")
		rounds    = flag.Int("rounds", 6, "alternations of the two sides of each ratio")
		warmup    = flag.Duration("warmup", 2*time.Second, "warm-up before each measurement")
		conns     = flag.Int("conns", 32, "concurrent connections (closed loop)")
		serve     = flag.String("serve-constant", "", "internal: serve the constant-response ceiling on this address")
		bareProxy = flag.String("serve-bare-proxy", "", "internal: serve the bare proxy on this address, to -upstream")
		upstream  = flag.String("upstream", "", "internal: the bare proxy's upstream (host:port)")
		targetURL = flag.String("target", "", "measure only this URL (POST body from the corpus) and exit")
		reference = flag.String("reference", "", "with -target: measure this URL too, taking turns with the target, and print target/reference")
		slice     = flag.Duration("slice", 200*time.Millisecond, "length of a turn when two sides take turns")
		onnxLib   = flag.String("onnxruntime-lib", onnxrt.CachedLibrary(), "ONNX Runtime's library, for the ONNX lines")
		onnxDir   = flag.String("onnx-bundle", "examples/onnx/sentiment-tiny-bert", "ONNX bundle directory the ONNX lines serve")
		onnxOnly  = flag.Bool("onnx-only", false, "measure only the ONNX lines")
		hopOnly   = flag.Bool("hop-only", false, "measure only the pinned geo hop (ratio geo/direct, the router on its own CPU)")
		onnxThr   = flag.Int("onnx-threads", runtime.NumCPU(), "ONNX Runtime threads per run, at the edges and in the in-process loop")
		jsonOut   = flag.String("json", "", "also write the edge's figures (requests/s, cores, RSS) as JSON here: what sentctl capacity reads")
	)
	flag.Parse()
	if *serve != "" {
		serveConstant(*serve)
		return
	}
	if *bareProxy != "" {
		serveBareProxy(*bareProxy, *upstream)
		return
	}
	texts := loadCorpus(*corpus)
	if *targetURL != "" && *reference != "" {
		ref, res := alternating(&side{target: target{url: *reference, bodies: bodies(texts)}}, &side{target: target{url: *targetURL, bodies: bodies(texts)}},
			*conns, *warmup, *duration, *slice)
		ref.print("reference")
		res.print("target")
		fmt.Printf("ratio target/reference: %.3f\n", res.rate()/ref.rate())
		return
	}
	if *targetURL != "" {
		res := closedLoop(*targetURL, nil, bodies(texts), *conns, *warmup, *duration)
		res.print("target")
		return
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds must be at least 1")
		os.Exit(2)
	}
	onnx := onnxBench{lib: *onnxLib, dir: *onnxDir, threads: *onnxThr}
	if *hopOnly {
		if err := hopOnlyRun(*edgeBin, *geoBin, *corpus, *conns, *warmup, *duration); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *onnxOnly {
		if err := onnxOnlyRun(*edgeBin, onnx, texts, *rounds, *warmup, *duration, *slice); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*edgeBin, *geoBin, *corpus, *jsonOut, texts, *conns, *rounds, *warmup, *duration, *slice, onnx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// program is a binary the bench runs: its path, or "" to build pkg.
type program struct {
	path *string
	pkg  string
}

// buildMissing builds, into dir, every binary whose path is empty.
func buildMissing(dir string, bins ...program) error {
	for _, b := range bins {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(dir, filepath.Base(b.pkg))
		if out, err := exec.Command("go", "build", "-o", *b.path, b.pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("cannot build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// hopOnlyRun measures only the pinned geo hop (pinnedHop): the figure
// the router's acceptance is judged on, without the rest of the run.
func hopOnlyRun(edgeBin, geoBin, corpus string, conns int, warmup, duration time.Duration) error {
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := buildMissing(tmp, program{&edgeBin, "./cmd/edge"}, program{&geoBin, "./cmd/geo"}); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return pinnedHop(self, edgeBin, geoBin, tmp, corpus, conns, warmup, duration)
}

func run(edgeBin, geoBin, corpus, jsonOut string, texts []string, conns, rounds int, warmup, duration, slice time.Duration, onnx onnxBench) error {
	registryBin := ""
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := buildMissing(tmp, program{&edgeBin, "./cmd/edge"}, program{&geoBin, "./cmd/geo"}, program{&registryBin, "./cmd/registry"}); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ceilAddr, edgeAddr, geoAddr := freeAddr(), freeAddr(), freeAddr()
	edgeGRPC, geoGRPC := freeAddr(), freeAddr()
	ceiling, err := start(self, tmp, "ceiling", "-serve-constant", ceilAddr)
	if err != nil {
		return err
	}
	defer stop(ceiling)
	// The edge as deployed: metrics, JSON logs, rate limiting on (set high
	// for the bench), the embedded default model.
	edge, err := start(edgeBin, tmp, "edge", "-listen", edgeAddr, "-grpc-listen", edgeGRPC, "-region", "bench", "-rate-limit", "1e9",
		"-cache-dir", filepath.Join(tmp, "cache"), "-shutdown-delay", "0s")
	if err != nil {
		return err
	}
	defer stop(edge)
	if err := waitHTTP("http://" + edgeAddr + "/health/ready"); err != nil {
		return err
	}
	if err := waitHTTP("http://" + ceilAddr + "/"); err != nil {
		return err
	}
	// The geo router in front of that one edge, as clients would use it.
	geo, err := start(geoBin, tmp, "geo", "-listen", geoAddr, "-grpc-listen", geoGRPC, "-static-grpc", "bench="+edgeGRPC,
		"-regions", "bench=0,0", "-default-region", "bench",
		"-static", "bench="+edgeAddr, "-shutdown-delay", "0s", "-rate-limit", "0", "-max-conns-per-ip", "0")
	if err != nil {
		return err
	}
	defer stop(geo)
	if err := waitHTTP("http://" + geoAddr + "/health/ready"); err != nil {
		return err
	}
	fmt.Printf("corpus: %d texts, mean %d bytes; %d connections; %v per phase after %v warm-up; the two sides of a ratio take turns every %v; load generator and servers share this machine's %d cores\n",
		len(texts), meanLen(texts), conns, duration, warmup, slice, runtime.NumCPU())
	v1 := bodies(texts)
	ceil, ed, rs := interleaved(rounds, "ceiling (constant JSON)", "edge /v1/predict",
		takingTurns(target{url: "http://" + ceilAddr + "/v1/predict", bodies: v1}, target{url: "http://" + edgeAddr + "/v1/predict", bodies: v1},
			conns, warmup, duration, slice))
	printRatio("edge/ceiling", ceil, ed, rs, "")
	// The Open Inference Protocol's JSON against /v1/predict, one text per
	// request, then its binary tensor data extension.
	infer := "http://" + edgeAddr + "/v2/models/sentiment/infer"
	v1r, oip, rs := interleaved(rounds, "edge /v1/predict", "edge OIP infer, JSON",
		takingTurns(target{url: "http://" + edgeAddr + "/v1/predict", bodies: v1}, target{url: infer, bodies: inferBodies(texts, false)},
			conns, warmup, duration, slice))
	printRatio("oip/v1", v1r, oip, rs, "")
	bin := closedLoop(infer, nil, inferBodies(texts, true), conns, warmup, duration)
	bin.print("edge OIP infer, binary tensor data")
	direct, viaGeo, rs := interleaved(rounds, "edge direct", "geo router -> edge",
		takingTurns(target{url: "http://" + edgeAddr + "/v1/predict", bodies: v1}, target{url: "http://" + geoAddr + "/v1/predict", bodies: v1},
			conns, warmup, duration, slice))
	printRatio("geo/direct (shared cores)", direct, viaGeo, rs, "")
	grpcRatios(infer, edgeGRPC, geoGRPC, texts, rounds, conns, warmup, duration)
	if err := tlsFrontDoor(geoBin, tmp, geoAddr, edgeAddr, texts, conns, rounds, warmup, duration, slice); err != nil {
		return err
	}
	if err := pinnedHop(self, edgeBin, geoBin, tmp, corpus, conns, warmup, duration); err != nil {
		return err
	}
	if err := shadowCost(edgeBin, registryBin, tmp, v1, conns, rounds, warmup, duration); err != nil {
		return err
	}

	if err := onnxServing(edgeBin, tmp, onnx, filepath.Clean(onnx.dir)+".pt", texts, rounds, warmup, duration, slice); err != nil {
		return err
	}

	half := ed.rate() / 2
	open := openLoop("http://"+edgeAddr+"/v1/predict", v1, half, warmup, duration)
	open.print(fmt.Sprintf("edge at half max (%.0f req/s offered)", half))
	rss, err := procRSS(edge.Process.Pid)
	if err == nil {
		fmt.Printf("edge RSS after the run: %.1f MiB\n", float64(rss)/(1<<20))
	}
	if jsonOut != "" {
		if err := writeFigures(jsonOut, benchFigures{EdgeRPS: ed.rate(), Cores: runtime.NumCPU(), EdgeRSSBytes: rss,
			HalfLoadP99Ms: float64(open.quantile(0.99).Microseconds()) / 1000}); err != nil {
			return err
		}
	}
	restart := time.Now()
	stop(edge)
	edge2, err := start(edgeBin, tmp, "edge2", "-listen", edgeAddr, "-region", "bench", "-shutdown-delay", "0s",
		"-cache-dir", filepath.Join(tmp, "cache"))
	if err != nil {
		return err
	}
	defer stop(edge2)
	t0 := time.Now()
	if err := waitHTTP("http://" + edgeAddr + "/health/ready"); err != nil {
		return err
	}
	fmt.Printf("edge start-up to ready: %v (restart cycle %v)\n", time.Since(t0).Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))
	return nil
}

// pinnedHop measures the geo hop as deployed, where the router runs on
// CPUs of its own: the load generator and an edge share CPU 0 in every
// phase, and the geo router (or the bare proxy, its reference) gets CPU
// 1. Sharing two cores among all three processes (the "shared cores"
// line) charges the router's CPU to the edge, which no deployment does.
func pinnedHop(self, edgeBin, geoBin, tmp, corpus string, conns int, warmup, duration time.Duration) error {
	if runtime.NumCPU() < 2 {
		fmt.Println("ratio geo/direct: skipped, needs 2 CPUs")
		return nil
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		fmt.Println("ratio geo/direct: skipped, taskset (util-linux) not found")
		return nil
	}
	edgeAddr, geoAddr := freeAddr(), freeAddr()
	edge, err := start("taskset", tmp, "edge-pinned", "-c", "0", edgeBin, "-listen", edgeAddr, "-region", "bench",
		"-rate-limit", "1e9", "-cache-dir", filepath.Join(tmp, "cache-pinned"), "-shutdown-delay", "0s")
	if err != nil {
		return err
	}
	defer stop(edge)
	geo, err := start("taskset", tmp, "geo-pinned", "-c", "1", geoBin, "-listen", geoAddr, "-regions", "bench=0,0",
		"-default-region", "bench", "-static", "bench="+edgeAddr, "-shutdown-delay", "0s", "-rate-limit", "0", "-max-conns-per-ip", "0")
	if err != nil {
		return err
	}
	defer stop(geo)
	bareAddr := freeAddr()
	bare, err := start("taskset", tmp, "bare-proxy-pinned", "-c", "1", self, "-serve-bare-proxy", bareAddr, "-upstream", edgeAddr)
	if err != nil {
		return err
	}
	defer stop(bare)
	for _, u := range []string{"http://" + edgeAddr + "/health/ready", "http://" + geoAddr + "/health/ready", "http://" + bareAddr + "/health/ready"} {
		if err := waitHTTP(u); err != nil {
			return err
		}
	}
	measure := func(url string) (float64, error) {
		out, err := exec.Command("taskset", "-c", "0", self, "-target", url, "-corpus", corpus,
			"-conns", fmt.Sprint(conns), "-warmup", warmup.String(), "-duration", duration.String()).Output()
		if err != nil {
			return 0, fmt.Errorf("pinned load on %s: %w", url, err)
		}
		var name string
		var rate float64
		if _, err := fmt.Sscan(string(out), &name, &rate); err != nil {
			return 0, fmt.Errorf("pinned load on %s printed %q: %w", url, out, err)
		}
		return rate, nil
	}
	// Whole phases, two rounds of each, not turns of 200 ms: taking turns,
	// the router's CPU idles through every turn of the edge's, and on a VM
	// an idle vCPU comes back slow (2026-12-01: turns read 0.63-0.82, whole
	// phases 0.84-0.96, the same binaries at the same hour). A deployed
	// router never idles that way.
	// The bare proxy is measured between the two, its ratio printed as
	// a reference: the most this machine lets a fasthttp proxy with the
	// router's pipe keep of the edge's rate.
	var viaGeo, viaBare, direct float64
	var perRound []string
	for round := 0; round < 2; round++ {
		g, err := measure("http://" + geoAddr + "/v1/predict")
		if err != nil {
			return err
		}
		b, err := measure("http://" + bareAddr + "/v1/predict")
		if err != nil {
			return err
		}
		d, err := measure("http://" + edgeAddr + "/v1/predict")
		if err != nil {
			return err
		}
		viaGeo, viaBare, direct = viaGeo+g/2, viaBare+b/2, direct+d/2
		perRound = append(perRound, fmt.Sprintf("%.2f", g/d))
	}
	fmt.Printf("%-44s %9.0f req/s\n%-44s %9.0f req/s\n%-44s %9.0f req/s\n", "geo router (own CPU) -> edge, pinned, mean", viaGeo,
		"bare proxy (own CPU) -> edge, pinned, mean", viaBare, "edge direct, pinned, mean", direct)
	fmt.Printf("ratio bare-proxy/direct (reference): %.3f\n", viaBare/direct)
	fmt.Printf("ratio geo/direct: %.3f (rounds: %s)\n", viaGeo/direct, strings.Join(perRound, " "))
	return nil
}

// shadowCost measures what a rollout's shadow costs an edge: the edge
// follows a registry (a directory store) that serves v1, and a candidate
// v2 scores 10 % of the traffic in the shadow (answering none of it),
// set and cleared through the admin API between interleaved rounds.
func shadowCost(edgeBin, registryBin, tmp string, v1 []body, conns, rounds int, warmup, duration time.Duration) error {
	regAddr, edgeAddr := freeAddr(), freeAddr()
	const admin, reader = "bench-admin-token-0123456789", "bench-reader-token-0123456789"
	reg, err := startEnv(registryBin, tmp, "registry", []string{"REGISTRY_TOKENS=admin:bench:" + admin + ",reader:edge:" + reader},
		"-listen", regAddr, "-store", "dir:"+filepath.Join(tmp, "registry-store"), "-shutdown-delay", "0s")
	if err != nil {
		return err
	}
	defer stop(reg)
	if err := waitHTTP("http://" + regAddr + "/health/ready"); err != nil {
		return err
	}
	ctx := context.Background()
	c := &regclient.Client{BaseURL: "http://" + regAddr, Token: admin}
	data := defaultmodel.Artifact()
	for _, v := range []string{"v1", "v2"} {
		if _, err := c.Publish(ctx, "sentiment", v, bytes.NewReader(data), int64(len(data)), wire.NewVersion{}); err != nil {
			return fmt.Errorf("cannot publish %s: %w", v, err)
		}
	}
	if _, err := c.Promote(ctx, "sentiment", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		return err
	}
	edge, err := startEnv(edgeBin, tmp, "edge-shadow", []string{"EDGE_REGISTRY_TOKEN=" + reader}, "-listen", edgeAddr, "-region", "bench",
		"-registry", "http://"+regAddr, "-rate-limit", "1e9", "-cache-dir", filepath.Join(tmp, "cache-shadow"), "-shutdown-delay", "0s")
	if err != nil {
		return err
	}
	defer stop(edge)
	if err := waitHTTP("http://" + edgeAddr + "/health/ready"); err != nil {
		return err
	}
	// The edge holds v2 once it answers the version's ready route.
	shadow := func(on bool) error {
		var err error
		if on {
			_, err = c.SetCandidate(ctx, "sentiment", "production", "bench", wire.CandidateRequest{Candidate: wire.Candidate{Version: "v2", Shadow: 0.1}})
		} else {
			if _, err = c.ClearCandidate(ctx, "sentiment", "production", "bench"); regclient.IsStatus(err, http.StatusNotFound) {
				err = nil // none yet
			}
		}
		if err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			code, _, _ := fasthttp.GetTimeout(nil, "http://"+edgeAddr+"/v2/models/sentiment/versions/v2/ready", time.Second)
			if held := code == 200; held == on {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("the edge did not pick up the shadow change (on=%v)", on)
	}
	url := "http://" + edgeAddr + "/v1/predict"
	var failed error
	measure := func(on bool) func() result {
		return func() result {
			if err := shadow(on); err != nil && failed == nil {
				failed = err
			}
			return closedLoop(url, nil, v1, conns, warmup, duration)
		}
	}
	// The candidate is set on the edge between the sides, so they cannot
	// take turns within a round.
	plain, shadowed, rs := interleaved(rounds, "edge /v1/predict, no shadow", "edge /v1/predict, 10% shadow",
		func() (result, result) { return measure(false)(), measure(true)() })
	if failed != nil {
		return failed
	}
	printRatio("shadow/plain", plain, shadowed, rs, ", 10% of texts scored by a candidate in the shadow")
	return nil
}

// tlsFrontDoor measures what TLS costs at the geo router's public
// listener: a second router, serving a certificate from a throwaway CA,
// in front of the same edge, against the plain one, in interleaved
// rounds over keep-alive connections (the handshakes happen in the
// warm-up; what is left is record encryption).
func tlsFrontDoor(geoBin, tmp, plainAddr, edgeAddr string, texts []string, conns, rounds int, warmup, duration, slice time.Duration) error {
	ca, err := devca.New(filepath.Join(tmp, "tls"), "bench CA", time.Hour)
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue("geo", "geo", time.Hour)
	if err != nil {
		return err
	}
	tlsCfg, err := tlsfiles.ClientConfig(ca.CertFile(), "", "", nil)
	if err != nil {
		return err
	}
	tlsAddr := freeAddr()
	geo, err := start(geoBin, tmp, "geo-tls", "-listen", tlsAddr, "-regions", "bench=0,0", "-default-region", "bench",
		"-static", "bench="+edgeAddr, "-shutdown-delay", "0s", "-rate-limit", "0", "-max-conns-per-ip", "0",
		"-tls-cert", cert, "-tls-key", key)
	if err != nil {
		return err
	}
	defer stop(geo)
	deadline := time.Now().Add(30 * time.Second)
	for c := (&fasthttp.Client{TLSConfig: tlsCfg}); ; {
		code, _, err := c.GetTimeout(nil, "https://"+tlsAddr+"/health/ready", time.Second)
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the TLS geo router is not ready: %v (code %d)", err, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	v1 := bodies(texts)
	plain, secure, rs := interleaved(rounds, "geo front door, plain HTTP", "geo front door, TLS",
		takingTurns(target{url: "http://" + plainAddr + "/v1/predict", bodies: v1}, target{url: "https://" + tlsAddr + "/v1/predict", tls: tlsCfg, bodies: v1},
			conns, warmup, duration, slice))
	printRatio("tls/plain", plain, secure, rs, ", geo front door, keep-alive")
	return nil
}

// interleaved measures sides a and b in rounds, so a burst of background
// noise does not land on one side only, prints each round and the
// totals, and returns the totals (a ratio is of those) and each round's
// ratio b/a, which shows how far the machine drifted.
func interleaved(rounds int, aName, bName string, round func() (a, b result)) (aTotal, bTotal result, perRound []float64) {
	for i := 1; i <= rounds; i++ {
		ra, rb := round()
		ra.print(fmt.Sprintf("%s, round %d", aName, i))
		rb.print(fmt.Sprintf("%s, round %d", bName, i))
		aTotal, bTotal = merge([]result{aTotal, ra}, aTotal.elapsed+ra.elapsed), merge([]result{bTotal, rb}, bTotal.elapsed+rb.elapsed)
		perRound = append(perRound, rb.rate()/ra.rate())
	}
	aTotal.print(aName + ", all rounds")
	bTotal.print(bName + ", all rounds")
	return aTotal, bTotal, perRound
}

// printRatio prints "ratio name: b/a of the totals (rounds: …) note".
func printRatio(name string, a, b result, perRound []float64, note string) {
	rs := make([]string, len(perRound))
	for i, r := range perRound {
		rs[i] = fmt.Sprintf("%.2f", r)
	}
	fmt.Printf("ratio %s: %.3f (rounds: %s)%s\n", name, b.rate()/a.rate(), strings.Join(rs, " "), note)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(bin, dir, name string, args ...string) (*exec.Cmd, error) {
	return startEnv(bin, dir, name, nil, args...)
}

// startEnv is start with env added to the environment (tokens: never on
// a command line).
func startEnv(bin, dir, name string, env []string, args ...string) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, _, err := fasthttp.GetTimeout(nil, url, time.Second)
		if err == nil && code == 200 {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// serveConstant is the ceiling: fasthttp answering a fixed JSON body.
func serveConstant(addr string) {
	body := []byte(`{"label":"positive","score":0.9731,"model":"sentiment","version":"v1","region":"bench","request_id":"0"}` + "\n")
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	if err := s.ListenAndServe(addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serveBareProxy is the geo hop's reference: a fasthttp server that
// forwards every request as it came through the router's own pipelined
// connection (forward.Pipe), and nothing else: no request ID, trace,
// headers, breaker, metrics or logs. What the router costs beyond it is
// the product's own work.
func serveBareProxy(addr, upstream string) {
	p := &forward.Pipe{Addr: upstream, Timeout: 5 * time.Second}
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if err := p.Do(&ctx.Request, &ctx.Response, time.Now()); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	if err := s.ListenAndServe(addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func loadCorpus(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: corpus %s unavailable (%v); using generated sentences\n", path, err)
		return generated()
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for first := true; sc.Scan(); first = false {
		text, _, _ := strings.Cut(sc.Text(), "\t")
		if !first && strings.TrimSpace(text) != "" {
			out = append(out, text)
		}
	}
	if len(out) == 0 {
		return generated()
	}
	return out
}

func generated() []string {
	adj := []string{"wonderful", "dull", "moving", "tedious", "sharp", "clumsy", "tender", "bland", "gripping", "forgettable"}
	noun := []string{"film", "script", "cast", "ending", "score", "story", "debut", "sequel"}
	var out []string
	for i := 0; i < 1000; i++ {
		out = append(out, fmt.Sprintf("the %s %s is %s , and the %s feels %s .", adj[i%10], noun[i%8], adj[(i/3)%10], noun[(i/7)%8], adj[(i/11)%10]))
	}
	return out
}

func meanLen(texts []string) int {
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	return n / len(texts)
}

// bodies pre-encodes every text as a /v1/predict body.
// body is one request body; with jsonLen it uses the binary tensor data
// extension, and jsonLen is the JSON part's length.
type body struct {
	data    []byte
	jsonLen string
}

func (b body) set(req *fasthttp.Request) {
	req.SetBody(b.data)
	if b.jsonLen != "" {
		req.Header.Set("Inference-Header-Content-Length", b.jsonLen)
	} else {
		req.Header.Del("Inference-Header-Content-Length")
	}
}

// bodies are /v1/predict bodies, one per text.
func bodies(texts []string) []body {
	out := make([]body, len(texts))
	for i, t := range texts {
		out[i] = body{data: []byte(`{"text":` + quote(t) + `}`)}
	}
	return out
}

// inferBodies are Open Inference Protocol bodies, one text each: in JSON,
// or with binaryData, the text as a BYTES element after the JSON and the
// outputs asked for in binary too.
func inferBodies(texts []string, binaryData bool) []body {
	out := make([]body, len(texts))
	for i, t := range texts {
		if !binaryData {
			out[i] = body{data: []byte(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":[` + quote(t) + `]}]}`)}
			continue
		}
		head := fmt.Sprintf(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, 4+len(t))
		data := binary.LittleEndian.AppendUint32([]byte(head), uint32(len(t)))
		out[i] = body{data: append(data, t...), jsonLen: strconv.Itoa(len(head))}
	}
	return out
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

type result struct {
	ok, failed int64
	late       int64 // open loop: sent > 2 ms after due
	elapsed    time.Duration
	lat        []time.Duration
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// quantile is the latency at p (0 to 1); r.lat is sorted on the way.
func (r result) quantile(p float64) time.Duration {
	slices.Sort(r.lat)
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

func (r result) print(name string) {
	q := r.quantile
	fmt.Printf("%-44s %9.0f req/s  p50 %8v  p99 %8v  p99.9 %8v  ok %d  failed %d  late %d\n",
		name, r.rate(), q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), q(0.999).Round(time.Microsecond), r.ok, r.failed, r.late)
}

// target is where a closed loop sends its requests, and what it posts.
type target struct {
	url    string
	tls    *tls.Config
	bodies []body
}

// side is one target of a closed loop and what was measured there.
type side struct {
	target
	gate  atomic.Pointer[chan struct{}] // closed while the side has its turn
	parts []result                      // one per connection
	ran   time.Duration                 // its turns while measuring
}

// run gives s its turn; pause ends it (requests in flight finish).
func (s *side) run()   { close(*s.gate.Load()) }
func (s *side) pause() { ch := make(chan struct{}); s.gate.Store(&ch) }

func (s *side) result() result { return merge(s.parts, s.ran) }

// closedLoop keeps conns requests in flight for warmup+duration and
// measures the last duration.
func closedLoop(url string, tlsCfg *tls.Config, bs []body, conns int, warmup, duration time.Duration) result {
	s := &side{target: target{url: url, tls: tlsCfg, bodies: bs}}
	drive([]*side{s}, conns, warmup, duration, duration)
	return s.result()
}

// alternating measures two sides with the same closed loop, conns
// connections each, taking turns every slice: warmup, then duration, of
// turns on each side. Sides that take turns this often see the same
// moments of a noisy machine. Measured one after the other in phases of
// seconds, the same ratio moved by ±20% from one round to the next on a
// shared 2-core VM.
func alternating(a, b *side, conns int, warmup, duration, slice time.Duration) (result, result) {
	drive([]*side{a, b}, conns, warmup, duration, slice)
	return a.result(), b.result()
}

// takingTurns is a round of interleaved in which a and b take turns.
func takingTurns(a, b target, conns int, warmup, duration, slice time.Duration) func() (result, result) {
	return func() (result, result) {
		return alternating(&side{target: a}, &side{target: b}, conns, warmup, duration, slice)
	}
}

// drive runs the sides' closed loops in turns of slice: first warmup on
// each side, then duration measured on each. A request counts when it
// starts while measuring; one in flight when its side's turn ends
// finishes in the next turn, a fraction of a millisecond that every side
// shares alike.
func drive(sides []*side, conns int, warmup, duration, slice time.Duration) {
	var measuring, stopping atomic.Bool
	var wg sync.WaitGroup
	for _, s := range sides {
		s.pause()
		s.parts, s.ran = make([]result, conns), 0
		client := &fasthttp.Client{MaxConnsPerHost: conns, TLSConfig: s.tls}
		for w := 0; w < conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.work(client, w, &measuring, &stopping)
			}()
		}
	}
	turns := func(total time.Duration) {
		for done := time.Duration(0); done < total; done += slice {
			for _, s := range sides {
				t0 := time.Now()
				s.run()
				time.Sleep(min(slice, total-done))
				s.pause()
				if measuring.Load() {
					s.ran += time.Since(t0)
				}
			}
		}
	}
	turns(warmup)
	measuring.Store(true)
	turns(duration)
	stopping.Store(true)
	for _, s := range sides {
		s.run()
	}
	wg.Wait()
}

// work is connection w's loop: it sends a request whenever its side has
// the turn, until stopping.
func (s *side) work(client *fasthttp.Client, w int, measuring, stopping *atomic.Bool) {
	req, resp := newPost(s.url)
	lat := make([]time.Duration, 0, 1<<16)
	for i := w * 7919; ; i++ {
		<-*s.gate.Load()
		if stopping.Load() {
			break
		}
		counted := measuring.Load()
		s.bodies[i%len(s.bodies)].set(req)
		t0 := time.Now()
		err := client.DoTimeout(req, resp, 5*time.Second)
		d := time.Since(t0)
		if !counted {
			continue
		}
		if err != nil || resp.StatusCode() != 200 {
			s.parts[w].failed++
			continue
		}
		s.parts[w].ok++
		lat = append(lat, d)
	}
	s.parts[w].lat = lat
}

// openLoop sends requests at a fixed rate, whatever the latency, so slow
// answers do not hide by slowing the load (no coordinated omission). A
// dispatcher releases the requests due each millisecond to a pool of
// workers; latency counts from when a worker sends it, and a request sent
// more than 2 ms after it was due (every worker busy: the server is
// falling behind) is counted as late.
func openLoop(url string, bs []body, rate float64, warmup, duration time.Duration) result {
	const workers = 256
	client := &fasthttp.Client{MaxConnsPerHost: workers}
	due := make(chan time.Time, 1<<16)
	parts := make([]result, workers)
	begin := time.Now()
	measureFrom, end := begin.Add(warmup), begin.Add(warmup+duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := newPost(url)
			lat := make([]time.Duration, 0, 1<<14)
			for i := w * 7919; ; i++ {
				at, ok := <-due
				if !ok {
					break
				}
				bs[i%len(bs)].set(req)
				sentAt := time.Now()
				err := client.DoTimeout(req, resp, 5*time.Second)
				if at.Before(measureFrom) {
					continue
				}
				if sentAt.Sub(at) > 2*time.Millisecond {
					parts[w].late++
				}
				if err != nil || resp.StatusCode() != 200 {
					parts[w].failed++
					continue
				}
				parts[w].ok++
				lat = append(lat, time.Since(sentAt))
			}
			parts[w].lat = lat
		}()
	}
	sent := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		for shouldHave := int(now.Sub(begin).Seconds() * rate); sent < shouldHave; sent++ {
			due <- begin.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
		}
		time.Sleep(time.Millisecond)
	}
	close(due)
	wg.Wait()
	return merge(parts, duration)
}

// newPost returns a JSON POST request to url and a response to reuse.
func newPost(url string) (*fasthttp.Request, *fasthttp.Response) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod("POST")
	req.SetRequestURI(url)
	req.Header.SetContentType("application/json")
	return req, resp
}

func merge(parts []result, elapsed time.Duration) result {
	var r result
	r.elapsed = elapsed
	for _, p := range parts {
		r.ok += p.ok
		r.failed += p.failed
		r.late += p.late
		r.lat = append(r.lat, p.lat...)
	}
	return r
}

func procRSS(pid int) (int64, error) { return rig.ProcStatus(pid, "VmRSS:") }

// benchFigures is what make bench measures of one edge, for sentctl
// capacity: closed-loop requests/s of the built-in model with the load
// generator on the same cores, and the edge's RSS.
type benchFigures struct {
	Source        string  `json:"source"`
	Date          string  `json:"date"`
	EdgeRPS       float64 `json:"edge_rps"`
	Cores         int     `json:"cores"`
	EdgeRSSBytes  int64   `json:"edge_rss_bytes"`
	HalfLoadP99Ms float64 `json:"half_load_p99_ms"`
}

func writeFigures(path string, f benchFigures) error {
	f.Source = "make bench: edge /v1/predict, closed loop, load generator on the same cores"
	f.Date = time.Now().UTC().Format("2006-01-02")
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
