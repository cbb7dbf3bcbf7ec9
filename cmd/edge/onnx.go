package main

import (
	"errors"
	"flag"
	"log/slog"
	"strconv"
	"time"

	"github.com/sentimentpro/sentiment/edge"
	"github.com/sentimentpro/sentiment/inference/onnxmodel"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
)

// onnxFlags are the settings for serving ONNX bundles.
type onnxFlags struct {
	Library string
	onnxmodel.Config
}

func (o *onnxFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Library, "onnxruntime-lib", "", "ONNX Runtime's libonnxruntime.so.1 (make onnxruntime fetches it); empty: ONNX models are refused, built-in ones served")
	fs.IntVar(&o.IntraOpThreads, "onnx-threads", 0, "threads one ONNX run may use (default: one per core)")
	fs.BoolFunc("onnx-spin", "true (default): ONNX Runtime's threads spin between runs; false: they sleep, leaving the cores to the rest of the edge", func(s string) error {
		spin, err := strconv.ParseBool(s)
		o.NoSpin = !spin
		return err
	})
	fs.IntVar(&o.MaxBatch, "onnx-max-batch", 32, "most texts an ONNX model runs together")
	fs.DurationVar(&o.MaxQueueDelay, "onnx-queue-delay", 0, "how long an ONNX model's runner waits for more texts to batch (0: runs what is queued)")
	fs.IntVar(&o.MaxQueue, "onnx-max-queue", 1024, "most requests waiting for an ONNX model; past it, 503 with Retry-After")
	fs.DurationVar(&o.QueueTimeout, "onnx-queue-timeout", 2*time.Second, "longest a request waits for an ONNX model; past it, 503 with Retry-After")
}

func (o onnxFlags) validate() error {
	if o.MaxBatch < 1 || o.MaxQueue < 1 || o.QueueTimeout <= 0 || o.MaxQueueDelay < 0 || o.IntraOpThreads < 0 {
		return errors.New("-onnx-max-batch and -onnx-max-queue must be 1 or more, -onnx-queue-timeout positive, -onnx-queue-delay and -onnx-threads 0 or more")
	}
	return nil
}

// open loads ONNX Runtime. An edge that cannot still serves built-in
// models, and says why it refuses ONNX ones.
func (o onnxFlags) open(log *slog.Logger) edge.ONNXConfig {
	c := edge.ONNXConfig{Serving: o.Config}
	if o.Library == "" {
		c.Unavailable = errors.New("no library configured (-onnxruntime-lib)")
		return c
	}
	rt, err := onnxrt.Open(o.Library)
	if err != nil {
		log.Error("ONNX Runtime is unavailable: ONNX models will be refused", "lib", o.Library, "err", err)
		c.Unavailable = err
		return c
	}
	log.Info("ONNX Runtime loaded", "lib", o.Library, "version", rt.Version)
	c.Runtime = rt
	return c
}
