// Package images builds the product's images from its Dockerfiles with
// buildah, offline: no container engine and no registry. The Dockerfiles'
// build stages (a golang image compiling the binary, a node image
// unpacking ONNX Runtime) are stood in for by named build contexts that
// hold what those stages produce, built here the same way: the static
// binary, the CA bundle, the glibc shared objects the edge and ONNX
// Runtime load, and the pinned ONNX Runtime library. deploy/images_test.go
// checks the images; the one-node cluster of manifests/node_test.go runs
// them.
package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Glibc is what the edge and libonnxruntime.so.1 load (ldd), as the
// edge's Dockerfile copies it from its Debian build stage.
var Glibc = []string{"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libdl.so.2",
	"lib/x86_64-linux-gnu/libpthread.so.0", "lib/x86_64-linux-gnu/librt.so.1", "lib/x86_64-linux-gnu/libm.so.6",
	"lib/x86_64-linux-gnu/libstdc++.so.6", "lib/x86_64-linux-gnu/libgcc_s.so.1"}

// Builder builds images into a buildah store of its own.
type Builder struct {
	Root        string // the module's root: Dockerfile.<name> and ./cmd/<name>
	Store       string // buildah's storage (vfs) and run directories live here
	ONNXRuntime string // libonnxruntime.so.1, for the edge image
}

// Buildah runs buildah on the builder's store.
func (b *Builder) Buildah(args ...string) ([]byte, error) {
	args = append([]string{"--root", filepath.Join(b.Store, "root"), "--runroot", filepath.Join(b.Store, "run"),
		"--storage-driver", "vfs"}, args...)
	out, err := exec.Command("buildah", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("buildah %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Build builds Dockerfile.<name> with VERSION=version as tag.
func (b *Builder) Build(name, version, tag string) error {
	ctx, err := b.context(name, version)
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctx)
	args := []string{"bud", "--quiet", "--build-context", "build=" + ctx}
	if name == "edge" {
		ort := filepath.Join(ctx, "onnxruntime")
		if err := copyFile(b.ONNXRuntime, filepath.Join(ort, "ort", "libonnxruntime.so.1")); err != nil {
			return err
		}
		args = append(args, "--build-context", "onnxruntime="+ort)
	}
	_, err = b.Buildah(append(args, "--build-arg", "VERSION="+version, "-f", filepath.Join(b.Root, "Dockerfile."+name), "-t", tag, b.Root)...)
	return err
}

// context lays out what the Dockerfile's build stage would produce:
// /out/<name> built as in the Dockerfile, /out/cache, the CA bundle, and
// for the edge the C library's shared objects in /out/root.
func (b *Builder) context(name, version string) (string, error) {
	dir, err := os.MkdirTemp(b.Store, "context-")
	if err != nil {
		return "", err
	}
	if name == "edge" {
		for _, lib := range Glibc {
			if err := copyFile("/"+lib, filepath.Join(dir, "out", "root", lib)); err != nil {
				return "", err
			}
		}
	}
	for _, d := range []string{"out/cache", "etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.Version="+version,
		"-o", filepath.Join(dir, "out", name), "./cmd/"+name)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, out)
	}
	certs := []byte("# no CA bundle on the build machine\n")
	if c, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		certs = c
	}
	return dir, os.WriteFile(filepath.Join(dir, "etc/ssl/certs/ca-certificates.crt"), certs, 0o644)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
