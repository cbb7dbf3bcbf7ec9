package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/inference/onnxmodel"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
)

// artifact is a model read and checked: a built-in artifact file, an ONNX
// bundle file (sentctl pack), or a bundle directory as an ONNX export
// writes it, packed in memory.
type artifact struct {
	path   string
	data   []byte
	digest string
	sapm   *model.Model   // the built-in format
	bundle *bundle.Bundle // an ONNX bundle
}

// readArtifact reads and checks the artifact at path (a file or a bundle
// directory), or the embedded default model when path is empty.
func readArtifact(path string) (*artifact, error) {
	if path == "" {
		m, err := defaultmodel.Load()
		if err != nil {
			return nil, fmt.Errorf("cannot load the default model: %w", err)
		}
		return &artifact{path: "(embedded default model)", digest: m.Digest(), sapm: m}, nil
	}
	a := &artifact{path: path}
	var err error
	if a.data, err = bundle.ReadPath(path, maxArtifactBytes); err != nil {
		return nil, err
	}
	a.digest = model.Digest(a.data)
	if bundle.Sniff(a.data) {
		a.bundle, err = bundle.Open(a.data)
	} else {
		a.sapm, err = model.Load(a.data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// maxArtifactBytes bounds what sentctl reads as one artifact.
const maxArtifactBytes = 2 << 30

// sigPath is where a signature of path is kept by default: beside it.
func sigPath(path string) string { return filepath.Clean(path) + ".sig" }

// labels names the model's classes.
func (a *artifact) labels() []string {
	if a.bundle != nil {
		return a.bundle.Info.Labels
	}
	return a.sapm.Labels()
}

// name is the model's own name, from its metadata.
func (a *artifact) name() string {
	if a.bundle != nil {
		return model.BundleMetadata(a.bundle.Info).Name
	}
	return a.sapm.Meta().Name
}

// predictor makes the artifact ready to predict; close releases it. An
// ONNX bundle needs ONNX Runtime's library at lib.
func (a *artifact) predictor(lib string) (p inference.Predictor, close func(), err error) {
	if a.sapm != nil {
		return a.sapm, func() {}, nil
	}
	if lib == "" {
		lib = defaultONNXRuntime()
	}
	if lib == "" {
		return nil, nil, errors.New("an ONNX model needs ONNX Runtime: set --onnxruntime-lib or SENTCTL_ONNXRUNTIME_LIB (make onnxruntime fetches it)")
	}
	rt, err := onnxrt.Open(lib)
	if err != nil {
		return nil, nil, err
	}
	m, err := onnxmodel.Load(rt, a.bundle, a.digest, onnxmodel.Config{})
	if err != nil {
		return nil, nil, err
	}
	return m, m.Close, nil
}

// defaultONNXRuntime is $SENTCTL_ONNXRUNTIME_LIB, else where make
// onnxruntime leaves the library.
func defaultONNXRuntime() string {
	if lib := os.Getenv("SENTCTL_ONNXRUNTIME_LIB"); lib != "" {
		return lib
	}
	return onnxrt.CachedLibrary()
}
