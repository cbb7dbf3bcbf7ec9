package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/model/bundle"
)

// onnxServing measures an ONNX bundle at the edge (served with
// -model-file): its throughput against an in-process loop that tokenizes
// and runs the same session one text at a time (what serving costs), the
// dynamic batcher against none at 64 clients, latency at half load, RSS,
// and, when Flask and gunicorn are installed, the same model in PyTorch
// behind Flask as the original product served it.
func onnxServing(edgeBin, tmp string, onnx onnxBench, torchWeights string, texts []string, rounds int, warmup, duration, slice time.Duration) error {
	lib, bundleDir := onnx.lib, onnx.dir
	if _, err := os.Stat(lib); err != nil {
		fmt.Printf("onnx: skipped: no ONNX Runtime at %s (make onnxruntime)\n", lib)
		return nil
	}
	fmt.Printf("onnx: %s, ONNX Runtime %s, %d threads per run\n", bundleDir, lib, onnx.threads)
	batchedAddr, unbatchedAddr := freeAddr(), freeAddr()
	edgeArgs := func(addr, batch string) []string {
		return []string{"-listen", addr, "-region", "bench", "-rate-limit", "0", "-model-file", bundleDir, "-onnxruntime-lib", lib,
			"-onnx-max-batch", batch, "-onnx-threads", fmt.Sprint(onnx.threads), "-onnx-max-queue", "100000", "-onnx-queue-timeout", "30s", "-shutdown-delay", "0s", "-access-log-sample", "0"}
	}
	batched, err := start(edgeBin, tmp, "edge-onnx", edgeArgs(batchedAddr, "32")...)
	if err != nil {
		return err
	}
	defer stop(batched)
	unbatched, err := start(edgeBin, tmp, "edge-onnx-unbatched", edgeArgs(unbatchedAddr, "1")...)
	if err != nil {
		return err
	}
	defer stop(unbatched)
	for _, addr := range []string{batchedAddr, unbatchedAddr} {
		if err := waitHTTP("http://" + addr + "/health/ready"); err != nil {
			return err
		}
	}
	v1 := bodies(texts)
	raw, err := newRawLoop(lib, bundleDir, texts, onnx.threads)
	if err != nil {
		return err
	}
	defer raw.close()
	unbatchedURL, batchedURL := "http://"+unbatchedAddr+"/v1/predict", "http://"+batchedAddr+"/v1/predict"
	r, e, rs := interleaved(rounds, "ONNX in-process loop, batch 1", "edge ONNX over HTTP, unbatched", func() (result, result) {
		return raw.run(warmup, duration), closedLoop(unbatchedURL, nil, v1, 32, warmup, duration)
	})
	printRatio("onnx/raw", r, e, rs, " (edge at batch 1, 32 connections, against the session run in a loop)")

	const clients = 64
	un, ba, rs := interleaved(rounds, "edge ONNX unbatched, 64 clients", "edge ONNX batched (32), 64 clients",
		takingTurns(target{url: unbatchedURL, bodies: v1}, target{url: batchedURL, bodies: v1}, clients, warmup, duration, slice))
	printRatio("batched/unbatched", un, ba, rs, "")
	half := ba.rate() / 2
	open := openLoop(batchedURL, v1, half, warmup, duration)
	open.print(fmt.Sprintf("edge ONNX at half max (%.0f req/s offered)", half))
	if rss, err := procRSS(batched.Process.Pid); err == nil {
		fmt.Printf("edge ONNX RSS after the run: %.1f MiB\n", float64(rss)/(1<<20))
	}
	return flaskTorch(tmp, torchWeights, batchedURL, v1, rounds, warmup, duration, slice)
}

// rawLoop tokenizes and runs a bundle's session in this process, one
// text at a time.
type rawLoop struct {
	b       *bundle.Bundle
	session *onnxrt.Session
	texts   []string
}

func newRawLoop(lib, bundleDir string, texts []string, threads int) (*rawLoop, error) {
	rt, err := onnxrt.Open(lib)
	if err != nil {
		return nil, err
	}
	data, err := bundle.ReadPath(bundleDir, 2<<30)
	if err != nil {
		return nil, err
	}
	b, err := bundle.Open(data)
	if err != nil {
		return nil, err
	}
	// The edge's settings: its threads, spinning between runs.
	s, err := rt.NewSession(b.Model, onnxrt.SessionOptions{IntraOpThreads: threads, Spin: true})
	if err != nil {
		return nil, err
	}
	return &rawLoop{b: b, session: s, texts: texts}, nil
}

func (l *rawLoop) close() { l.session.Close() }

// run predicts texts one after another for warmup, then duration.
func (l *rawLoop) run(warmup, duration time.Duration) result {
	var res result
	begin := time.Now()
	measureFrom, end := begin.Add(warmup), begin.Add(warmup+duration)
	for i := 0; ; i++ {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		enc := l.b.Tokenizer.Encode(l.texts[i%len(l.texts)])
		shape := []int64{1, int64(len(enc.IDs))}
		var inputs []onnxrt.Int64Input
		for _, in := range l.session.Inputs {
			switch in.Name {
			case bundle.InputIDs:
				inputs = append(inputs, onnxrt.Int64Input{Values: enc.IDs, Shape: shape})
			case bundle.AttentionMask:
				mask := make([]int64, len(enc.IDs))
				for j := range mask {
					mask[j] = 1
				}
				inputs = append(inputs, onnxrt.Int64Input{Values: mask, Shape: shape})
			case bundle.TokenTypeIDs:
				inputs = append(inputs, onnxrt.Int64Input{Values: enc.TypeIDs, Shape: shape})
			}
		}
		_, err := l.session.Run(inputs)
		if t0.Before(measureFrom) {
			continue
		}
		if err != nil {
			res.failed++
			continue
		}
		res.ok++
		res.lat = append(res.lat, time.Since(t0))
	}
	res.elapsed = duration
	return res
}

// flaskTorch serves the same model's PyTorch weights with Flask under
// gunicorn (Debian's python3-flask, gunicorn and python3-torch: the stack
// of the original product's guide), one worker per core, and compares the
// edge with it at 32 connections.
func flaskTorch(tmp, weights, edgeURL string, v1 []body, rounds int, warmup, duration, slice time.Duration) error {
	gunicorn, err := exec.LookPath("gunicorn")
	if err != nil {
		fmt.Println("flask-torch: skipped: gunicorn is not installed (apt-get install gunicorn python3-flask python3-torch)")
		return nil
	}
	if _, err := os.Stat(weights); err != nil {
		fmt.Printf("flask-torch: skipped: no PyTorch weights at %s (make model-onnx)\n", weights)
		return nil
	}
	app, err := filepath.Abs("bench/flask_torch")
	if err != nil {
		return err
	}
	examples, err := filepath.Abs("examples/onnx")
	if err != nil {
		return err
	}
	addr := freeAddr()
	flask, err := startEnv(gunicorn, tmp, "flask-torch",
		append(os.Environ(), "SAP_TORCH_WEIGHTS="+weights, "PYTHONPATH="+app+":"+examples, "OMP_NUM_THREADS=1"),
		"--workers", fmt.Sprint(runtime.NumCPU()), "--bind", addr, "--log-level", "warning", "app:app")
	if err != nil {
		return err
	}
	defer stop(flask)
	if err := waitHTTP("http://" + addr + "/health"); err != nil {
		return errors.Join(errors.New("flask-torch did not start"), err)
	}
	fl, ed, rs := interleaved(rounds, "Flask + PyTorch (gunicorn)", "edge ONNX batched",
		takingTurns(target{url: "http://" + addr + "/v1/predict", bodies: v1}, target{url: edgeURL, bodies: v1}, 32, warmup, duration, slice))
	printRatio("edge/flask-torch", fl, ed, rs, " (the same model: PyTorch behind Flask, ONNX at the edge)")
	return nil
}

// onnxBench says where the ONNX lines find their library and bundle.
type onnxBench struct {
	lib, dir string
	threads  int
}

// onnxOnlyRun measures the ONNX lines alone (-onnx-only).
func onnxOnlyRun(edgeBin string, onnx onnxBench, texts []string, rounds int, warmup, duration, slice time.Duration) error {
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := buildMissing(tmp, program{&edgeBin, "./cmd/edge"}); err != nil {
		return err
	}
	return onnxServing(edgeBin, tmp, onnx, filepath.Clean(onnx.dir)+".pt", texts, rounds, warmup, duration, slice)
}
