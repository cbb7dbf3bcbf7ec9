package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// runPack packs an ONNX export's directory into one bundle file: the
// same files always make the same bytes, so its digest and a signature
// over it name exactly that model.
func runPack(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pack", stderr)
	var dir, out string
	fs.StringVar(&dir, "dir", "", "bundle directory: model.onnx, tokenizer.json, config.json, tokenizer_config.json, ... (required)")
	fs.StringVar(&out, "out", "", "bundle file to write (default: DIR.bundle)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "dir"); err != nil {
		return err
	}
	a, err := readArtifact(dir)
	if err != nil {
		return err
	}
	if a.bundle == nil {
		return fmt.Errorf("%s is not a bundle directory", dir)
	}
	if out == "" {
		out = filepath.Clean(dir) + ".bundle"
	}
	if err := writeFileAtomic(out, a.data, 0o644); err != nil {
		return err
	}
	info := a.bundle.Info
	fmt.Fprintf(stdout, "packed %s into %s: %s, %d bytes\n", dir, out, a.digest, len(a.data))
	fmt.Fprintf(stdout, "labels: %s; inputs: %s; %s tokenizer, %d tokens at most; opset %d\n",
		strings.Join(info.Labels, ", "), strings.Join(info.Inputs, ", "), info.Tokenizer, info.MaxLength, info.Opset)
	return nil
}
