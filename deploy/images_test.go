package deploy

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// image is one Dockerfile and what its image must hold.
type image struct {
	name  string // binary and Dockerfile suffix
	port  string
	files []string // every regular file and directory in the image
	// volume is the one writable path, owned by the image user; "" for none.
	volume string
}

var images = []image{
	{name: "edge", port: "8080/tcp", volume: "var/lib/edge/cache",
		files: []string{"edge", "etc/ssl/certs/ca-certificates.crt", "var/lib/edge/cache/"}},
	{name: "registry", port: "8081/tcp", files: []string{"registry", "etc/ssl/certs/ca-certificates.crt"}},
	{name: "geo", port: "8080/tcp", files: []string{"geo", "etc/ssl/certs/ca-certificates.crt"}},
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
	root := repoRoot(t)
	store := t.TempDir()
	buildah := func(args ...string) []byte {
		t.Helper()
		args = append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--storage-driver", "vfs"}, args...)
		out, err := exec.Command("buildah", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			ctx := buildContext(t, root, img.name)
			tag := "sentiment-" + img.name + ":test"
			buildah("bud", "--quiet", "--build-context", "build="+ctx, "--build-arg", "VERSION=v9.8.7-test",
				"-f", filepath.Join(root, "Dockerfile."+img.name), "-t", tag, root)
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
			if _, ok := c.ExposedPorts[img.port]; !ok || len(c.ExposedPorts) != 1 {
				t.Errorf("exposed ports %v, want only %s", c.ExposedPorts, img.port)
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
		})
	}
}

// buildContext lays out what the Dockerfile's build stage would produce:
// /out/<name> built as in the Dockerfile, /out/cache, and the CA bundle.
func buildContext(t *testing.T, root, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"out/cache", "etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.Version=v9.8.7-test",
		"-o", filepath.Join(dir, "out", name), "./cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	certs := []byte("# test CA bundle\n")
	if b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		certs = b
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/ssl/certs/ca-certificates.crt"), certs, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkFiles reads every layer of the pushed OCI layout: exactly the
// expected files, no shell, a static executable binary, the volume owned
// by the image user.
func checkFiles(t *testing.T, oci string, img image) {
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
	var got []string
	headers := map[string]*tar.Header{}
	for _, l := range manifest.Layers {
		f, err := os.Open(blob(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(l.MediaType, "gzip") {
			if r, err = gzip.NewReader(f); err != nil {
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
			name := strings.TrimPrefix(h.Name, "./")
			headers[strings.TrimSuffix(name, "/")] = h
			if h.Typeflag == tar.TypeDir && !isParent(name, img.files) {
				got = append(got, name)
			}
			if h.Typeflag != tar.TypeDir {
				got = append(got, name)
			}
			if name == img.name {
				checkStatic(t, tr, h)
			}
		}
		f.Close()
	}
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

// checkStatic asserts the entrypoint binary is executable and statically
// linked: an image FROM scratch has no dynamic loader.
func checkStatic(t *testing.T, r io.Reader, h *tar.Header) {
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
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; an image FROM scratch cannot run it", h.Name)
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
