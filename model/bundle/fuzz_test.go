package bundle

import (
	"archive/tar"
	"bytes"
	"os"
	"testing"
)

// FuzzOpen feeds mangled bundles to both readers: neither may panic, and
// they must agree on whether a bundle is valid.
func FuzzOpen(f *testing.F) {
	model, err := os.ReadFile(tinyModel)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, file := range []struct{ name, content string }{
		{ConfigFile, tinyConfig}, {ModelFile, string(model)}, {TokenizerFile, tinyTokenizer},
	} {
		tw.WriteHeader(header(file.name, int64(len(file.content))))
		tw.Write([]byte(file.content))
	}
	tw.Close()
	if _, err := Open(buf.Bytes()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errOpen := Open(data)
		_, errInspect := Inspect(bytes.NewReader(data), int64(len(data)))
		if (errOpen == nil) != (errInspect == nil) {
			t.Fatalf("Open: %v; Inspect: %v", errOpen, errInspect)
		}
	})
}

// FuzzReadGraph feeds the ONNX reader mangled models.
func FuzzReadGraph(f *testing.F) {
	model, err := os.ReadFile(tinyModel)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(model)
	f.Add([]byte(graph([]Tensor{ids, mask}, []Tensor{logits})))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadGraph(bytes.NewReader(data), int64(len(data)))
	})
}
