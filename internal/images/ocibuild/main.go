// Command ocibuild is `make images` on a machine with no container
// engine: it builds the product's images from their Dockerfiles with
// buildah, offline (internal/images), and writes each as an OCI archive,
// bin/images/sentiment-<name>-<version>.tar, named
// sentiment-<name>:<version> inside: what `ctr images import`, `podman
// load` or `skopeo copy oci-archive:…` take.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sentimentpro/sentiment/internal/images"
)

// Config is what the command is told.
type Config struct {
	Version     string
	Out         string
	ONNXRuntime string
	Names       []string
}

func main() {
	var c Config
	var names string
	flag.StringVar(&c.Version, "version", "dev", "the images' version: their tag, label and the binaries' -version")
	flag.StringVar(&c.Out, "out", "bin/images", "directory for the OCI archives")
	flag.StringVar(&c.ONNXRuntime, "onnxruntime-lib", "", "ONNX Runtime's libonnxruntime.so.1, which the edge image carries (make onnxruntime fetches it)")
	flag.StringVar(&names, "images", "edge,registry,geo", "which images")
	flag.Parse()
	c.Names = strings.Split(names, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ocibuild:", err)
		os.Exit(1)
	}
}

func run(c Config) error {
	if _, err := os.Stat(c.ONNXRuntime); err != nil {
		return fmt.Errorf("-onnxruntime-lib: %w (make onnxruntime fetches it)", err)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	store, err := os.MkdirTemp("", "ocibuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(store)
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	b := &images.Builder{Root: root, Store: store, ONNXRuntime: c.ONNXRuntime}
	for _, name := range c.Names {
		tag := "sentiment-" + name + ":" + c.Version
		if err := b.Build(name, c.Version, tag); err != nil {
			return err
		}
		archive := filepath.Join(c.Out, "sentiment-"+name+"-"+c.Version+".tar")
		if _, err := b.Buildah("push", "--quiet", tag, "oci-archive:"+archive+":"+tag); err != nil {
			return err
		}
		fmt.Printf("%s  %s\n", tag, archive)
	}
	return nil
}
