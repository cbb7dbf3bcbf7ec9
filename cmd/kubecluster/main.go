// Command kubecluster starts and stops the one-node Kubernetes of
// internal/kubecluster for a person: `make k8s` runs `kubecluster up`,
// which leaves the cluster running and prints how to reach it, and `make
// k8s-down` runs `kubecluster down`, which takes it down and puts the
// host back as it was. It needs root (a bridge, cgroups, mounts).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sentimentpro/sentiment/internal/images"
	"github.com/sentimentpro/sentiment/internal/kubecluster"
)

// Config is what the command is told.
type Config struct {
	Command    string // up or down
	Dir        string
	Datacenter string
	ImageTag   string // the tag the product's images are imported as; "" for none
	ONNXLib    string // ONNX Runtime's library, for the edge image
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "kubecluster:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (Config, error) {
	c := Config{}
	fs := flag.NewFlagSet("kubecluster", flag.ContinueOnError)
	fs.StringVar(&c.Dir, "dir", ".k8s", "state directory: certificates, data, logs")
	fs.StringVar(&c.Datacenter, "datacenter", "dc-eu-west", "Consul datacenter of the node's agent")
	fs.StringVar(&c.ImageTag, "images", "", "build the product's images with buildah and import them as sentiment-<name>:TAG (the overlays pin v1.0.0)")
	fs.StringVar(&c.ONNXLib, "onnxruntime-lib", "", "ONNX Runtime's libonnxruntime.so.1 for the edge image (make onnxruntime fetches it)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kubecluster [-dir DIR] [-images TAG -onnxruntime-lib FILE] up | kubecluster [-dir DIR] down")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "down") {
		return c, fmt.Errorf("want one command, up or down; got %q", fs.Args())
	}
	c.Command = fs.Arg(0)
	if c.ImageTag != "" && c.ONNXLib == "" {
		return c, fmt.Errorf("-images needs -onnxruntime-lib (the edge image carries ONNX Runtime)")
	}
	return c, nil
}

func run(cfg Config) error {
	if cfg.Command == "down" {
		return kubecluster.Down(cfg.Dir)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := kubecluster.Up(ctx, kubecluster.Config{Dir: cfg.Dir, RepoRoot: root, Datacenter: cfg.Datacenter, Detach: true,
		Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }})
	if err != nil {
		return err
	}
	if cfg.ImageTag != "" {
		if err := importImages(c, root, cfg); err != nil {
			return fmt.Errorf("%w (the cluster runs: make k8s-down takes it down)", err)
		}
	}
	kubeconfig, _ := filepath.Abs(c.Kubeconfig)
	fmt.Printf(`
A one-node Kubernetes runs (node %[1]s at %[2]s, API https://%[2]s:%[3]d):

  export KUBECONFIG=%[4]s
  kubectl get nodes

On the node, as the manifests expect: Consul (datacenter %[5]s) at
http://%[2]s:%[6]d, and an S3 server at https://%[2]s:%[7]d (CA %[8]s,
access and secret key in %[9]s; create the bucket first).
%[10]sLogs: %[11]s. Take it down with: make k8s-down
`, kubecluster.NodeName, kubecluster.NodeIP, kubecluster.APIPort, kubeconfig, cfg.Datacenter, kubecluster.ConsulPort,
		kubecluster.S3Port, c.CA.CertFile(), filepath.Join(c.Dir, "pki", "s3.env"), imagesLine(cfg), filepath.Join(c.Dir, "logs"))
	return nil
}

func imagesLine(cfg Config) string {
	if cfg.ImageTag == "" {
		return ""
	}
	return fmt.Sprintf("The product's images are on the node as sentiment-{edge,registry,geo}:%s;\ndeploy them as docs/RUNBOOK.md says (manifests/node_test.go does).\n", cfg.ImageTag)
}

// importImages builds the three images as make test does and imports
// them into the node's image store.
func importImages(c *kubecluster.Cluster, root string, cfg Config) error {
	store := filepath.Join(c.Dir, "buildah")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	b := &images.Builder{Root: root, Store: store, ONNXRuntime: cfg.ONNXLib}
	for _, name := range []string{"edge", "registry", "geo"} {
		tag := "docker.io/library/sentiment-" + name + ":" + cfg.ImageTag
		if err := b.Build(name, cfg.ImageTag, tag); err != nil {
			return err
		}
		archive := filepath.Join(store, name+".tar")
		if _, err := b.Buildah("push", "--quiet", tag, "oci-archive:"+archive+":"+tag); err != nil {
			return err
		}
		if err := c.ImportImage(archive); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "kubecluster: image %s imported\n", tag)
	}
	return nil
}
