package bundle_test

import (
	"archive/tar"
	"bytes"
	"testing"

	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

// FuzzOpen feeds mangled bundles to both readers: neither may panic, and
// they must agree on whether a bundle is valid.
func FuzzOpen(f *testing.F) {
	model := bundletest.Model
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, file := range []struct{ name, content string }{
		{bundle.ConfigFile, bundletest.Config}, {bundle.ModelFile, string(model)}, {bundle.TokenizerFile, bundletest.Tokenizer},
	} {
		tw.WriteHeader(ustarHeader(file.name, int64(len(file.content))))
		tw.Write([]byte(file.content))
	}
	tw.Close()
	if _, err := bundle.Open(buf.Bytes()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errOpen := bundle.Open(data)
		_, errInspect := bundle.Inspect(bytes.NewReader(data), int64(len(data)))
		if (errOpen == nil) != (errInspect == nil) {
			t.Fatalf("Open: %v; Inspect: %v", errOpen, errInspect)
		}
	})
}

// FuzzReadGraph feeds the ONNX reader mangled models.
func FuzzReadGraph(f *testing.F) {
	f.Add(bundletest.Model)
	f.Add([]byte(bundletest.Graph([]bundle.Tensor{ids, mask}, []bundle.Tensor{logits})))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = bundle.ReadGraph(bytes.NewReader(data), int64(len(data)))
	})
}
