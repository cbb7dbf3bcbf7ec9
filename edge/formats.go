package edge

import (
	"errors"
	"fmt"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/inference/onnxmodel"
	"github.com/sentimentpro/sentiment/inference/onnxrt"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/bundle"
)

// MaxArtifactBytes bounds an artifact the edge loads: the built-in
// format's largest, or an ONNX bundle.
const MaxArtifactBytes = 2 << 30

// ErrNoONNXRuntime refuses an ONNX bundle on an edge without ONNX
// Runtime's library: it keeps serving what it has.
var ErrNoONNXRuntime = errors.New("this edge cannot serve ONNX models: ONNX Runtime is not available")

// ONNXConfig is how an edge serves ONNX bundles.
type ONNXConfig struct {
	// Runtime is ONNX Runtime, opened by main; nil when it is not
	// available, with Unavailable saying why.
	Runtime     *onnxrt.Runtime
	Unavailable error
	// Serving tunes each model's session and batcher.
	Serving onnxmodel.Config
}

// Predictor loads a verified artifact in whichever format it is: the
// built-in one, or an ONNX bundle, opened, loaded and warmed up.
func (c ONNXConfig) Predictor(data []byte, digest string) (inference.Predictor, error) {
	if !bundle.Sniff(data) {
		return model.Load(data)
	}
	if c.Runtime == nil {
		onnxUnavailable.Inc()
		why := c.Unavailable
		if why == nil {
			why = errors.New("no library configured (-onnxruntime-lib)")
		}
		return nil, fmt.Errorf("%w: %v", ErrNoONNXRuntime, why)
	}
	b, err := bundle.Open(data)
	if err != nil {
		return nil, err
	}
	m, err := onnxmodel.Load(c.Runtime, b, digest, c.Serving)
	if err != nil {
		return nil, err
	}
	if err := m.WarmUp(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}
