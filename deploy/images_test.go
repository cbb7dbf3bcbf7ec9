package deploy

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/images"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
)

// image is one Dockerfile and what its image must hold.
type image struct {
	name  string // binary and Dockerfile suffix
	ports []string
	files []string // every regular file and directory in the image
	// volume is the one writable path, owned by the image user; "" for none.
	volume string
	// onnx: the binary loads ONNX Runtime, so the image carries it and the
	// C library; the test runs an ONNX prediction in the image.
	onnx bool
}

const onnxRuntimeLib = "usr/lib/onnxruntime/libonnxruntime.so.1"

var imageList = []image{
	{name: "edge", ports: []string{"8080/tcp", "8090/tcp"}, volume: "var/lib/edge/cache", onnx: true,
		files: append([]string{"edge", "etc/ssl/certs/ca-certificates.crt", "var/lib/edge/cache/", onnxRuntimeLib}, images.Glibc...)},
	{name: "registry", ports: []string{"8081/tcp"}, files: []string{"registry", "etc/ssl/certs/ca-certificates.crt"}},
	{name: "geo", ports: []string{"8080/tcp"}, files: []string{"geo", "etc/ssl/certs/ca-certificates.crt"}},
}

const imageUser = "65532:65532"

// TestImages builds every Dockerfile with buildah, offline: the named
// build context "build" stands in for the golang builder stage, holding
// the static binary built here the way that stage builds it. It then
// checks the image config and every file in the image.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images with buildah: skipped in -short mode")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatal("buildah not found: run `make tools` (it installs Debian's buildah)")
	}
	b := &images.Builder{Root: repoRoot(t), Store: t.TempDir(), ONNXRuntime: testenv.ONNXRuntime(t)}
	buildah := func(args ...string) []byte {
		t.Helper()
		out, err := b.Buildah(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, img := range imageList {
		t.Run(img.name, func(t *testing.T) {
			tag := "sentiment-" + img.name + ":test"
			if err := b.Build(img.name, "v9.8.7-test", tag); err != nil {
				t.Fatal(err)
			}
			var info struct {
				OCIv1 struct {
					Config struct {
						User         string
						Entrypoint   []string
						ExposedPorts map[string]struct{}
						Volumes      map[string]struct{}
						Labels       map[string]string
					} `json:"config"`
				}
			}
			if err := json.Unmarshal(buildah("inspect", "--type", "image", tag), &info); err != nil {
				t.Fatal(err)
			}
			c := info.OCIv1.Config
			if c.User != imageUser {
				t.Errorf("user %q, want %q (numeric, non-root)", c.User, imageUser)
			}
			if len(c.Entrypoint) == 0 || c.Entrypoint[0] != "/"+img.name {
				t.Errorf("entrypoint %q, want /%s first (exec form, no shell)", c.Entrypoint, img.name)
			}
			exposed := slices.Sorted(maps.Keys(c.ExposedPorts))
			if !slices.Equal(exposed, img.ports) {
				t.Errorf("exposed ports %v, want %v", exposed, img.ports)
			}
			wantVolumes := 0
			if img.volume != "" {
				wantVolumes = 1
				if _, ok := c.Volumes["/"+img.volume]; !ok {
					t.Errorf("volumes %v, want /%s", c.Volumes, img.volume)
				}
			}
			if len(c.Volumes) != wantVolumes {
				t.Errorf("volumes %v, want %d", c.Volumes, wantVolumes)
			}
			if v := c.Labels["org.opencontainers.image.version"]; v != "v9.8.7-test" {
				t.Errorf("version label %q, want the build argument v9.8.7-test", v)
			}
			oci := filepath.Join(t.TempDir(), "oci")
			buildah("push", "--quiet", tag, "oci:"+oci+":"+img.name)
			checkFiles(t, oci, img)
			if img.onnx {
				predictInImage(t, oci, c.Entrypoint)
			}
		})
	}
}

// eachEntry calls f with every entry of every layer of the pushed OCI
// layout, in order.
func eachEntry(t *testing.T, oci string, f func(h *tar.Header, r io.Reader)) {
	t.Helper()
	blob := func(digest string) string {
		return filepath.Join(oci, "blobs", strings.Replace(digest, ":", "/", 1))
	}
	var index struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(oci, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index lists %d manifests", len(index.Manifests))
	}
	var manifest struct {
		Layers []struct{ Digest, MediaType string }
	}
	readJSON(t, blob(index.Manifests[0].Digest), &manifest)
	for _, l := range manifest.Layers {
		file, err := os.Open(blob(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = file
		if strings.HasSuffix(l.MediaType, "gzip") {
			if r, err = gzip.NewReader(file); err != nil {
				t.Fatal(err)
			}
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			f(h, tr)
		}
		file.Close()
	}
}

// checkFiles reads every layer of the pushed OCI layout: exactly the
// expected files, no shell, a static executable binary, the volume owned
// by the image user.
func checkFiles(t *testing.T, oci string, img image) {
	t.Helper()
	var got []string
	headers := map[string]*tar.Header{}
	eachEntry(t, oci, func(h *tar.Header, r io.Reader) {
		name := strings.TrimPrefix(h.Name, "./")
		headers[strings.TrimSuffix(name, "/")] = h
		if h.Typeflag == tar.TypeDir && !isParent(name, img.files) {
			got = append(got, name)
		}
		if h.Typeflag != tar.TypeDir {
			got = append(got, name)
		}
		if name == img.name {
			checkBinary(t, r, h, img)
		}
	})
	slices.Sort(got)
	want := slices.Sorted(slices.Values(img.files))
	if !slices.Equal(got, want) {
		t.Errorf("image files %v, want exactly %v (no shell, nothing else)", got, want)
	}
	if img.volume != "" {
		if h := headers[img.volume]; h == nil || h.Uid != 65532 || h.Gid != 65532 {
			t.Errorf("volume %s: %+v, want owned by 65532:65532", img.volume, h)
		}
	}
}

// isParent reports whether dir only leads to an expected path.
func isParent(dir string, files []string) bool {
	d := strings.TrimSuffix(dir, "/") + "/"
	return slices.ContainsFunc(files, func(f string) bool { return f != d && strings.HasPrefix(f, d) })
}

// checkBinary asserts the entrypoint binary is executable and statically
// linked (an image FROM scratch has no dynamic loader), or, for an image
// that carries the C library, linked against the loader the image has.
func checkBinary(t *testing.T, r io.Reader, h *tar.Header, img image) {
	t.Helper()
	if h.Mode&0o111 == 0 {
		t.Errorf("%s is not executable (mode %o)", h.Name, h.Mode)
	}
	tmp := filepath.Join(t.TempDir(), "bin")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e, err := elf.Open(tmp)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	defer e.Close()
	for _, p := range e.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, _ := io.ReadAll(p.Open())
		switch {
		case !img.onnx:
			t.Errorf("%s is dynamically linked; an image FROM scratch cannot run it", h.Name)
		case !slices.Contains(img.files, strings.TrimPrefix(strings.TrimRight(string(interp), "\x00"), "/")):
			t.Errorf("%s asks for the loader %q, which the image does not have", h.Name, interp)
		}
	}
	needed, _ := e.ImportedLibraries()
	for _, lib := range needed {
		if !slices.Contains(img.files, "lib/x86_64-linux-gnu/"+lib) {
			t.Errorf("%s needs %s, which the image does not have", h.Name, lib)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// predictInImage runs the image's entrypoint in its own files (chroot,
// as the image user), serving the tiny ONNX bundle, and asks it for a
// prediction: the image's C library and ONNX Runtime are enough.
func predictInImage(t *testing.T, oci string, entrypoint []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running the image's files needs root (chroot)")
	}
	rootfs := t.TempDir()
	if err := os.Chmod(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	extractLayers(t, oci, rootfs)
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "tmp", "tiny.bundle"), bundletest.Pack(t, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := append(slices.Clone(entrypoint[1:]), "-listen", addr, "-region", "image", "-model-file", "/tmp/tiny.bundle",
		"-cache-dir", "/tmp/cache", "-shutdown-delay", "0s")
	cmd := exec.Command(entrypoint[0], args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532},
		Pdeathsig: syscall.SIGKILL}
	cmd.Dir = "/"
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var body string
	testenv.Eventually(t, 30*time.Second, "the edge in the image answers", func() error {
		resp, err := http.Post("http://"+addr+"/v1/predict", "application/json", strings.NewReader(`{"text": "good film"}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		body = string(b)
		return nil
	})
	if !strings.Contains(body, `"label":"negative"`) || !strings.Contains(body, `"neutral":`) {
		t.Errorf("prediction in the image: %s\n%s", body, logs.String())
	}
	if !strings.Contains(logs.String(), "ONNX Runtime loaded") {
		t.Errorf("the edge did not log loading ONNX Runtime:\n%s", logs.String())
	}
}

// extractLayers writes the OCI image's layers into dir.
func extractLayers(t *testing.T, oci, dir string) {
	t.Helper()
	eachEntry(t, oci, func(h *tar.Header, r io.Reader) {
		path := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(path, os.FileMode(h.Mode)&0o7777|0o700)
			os.Chown(path, h.Uid, h.Gid)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(path), 0o755)
			out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o7777)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(out, r)
			out.Close()
		}
	})
}
