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

	"github.com/sentimentpro/sentiment/internal/kubecluster"
)

// Config is what the command is told.
type Config struct {
	Command    string // up or down
	Dir        string
	Datacenter string
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
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: kubecluster [-dir DIR] up|down") }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "down") {
		return c, fmt.Errorf("want one command, up or down; got %q", fs.Args())
	}
	c.Command = fs.Arg(0)
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
	kubeconfig, _ := filepath.Abs(c.Kubeconfig)
	fmt.Printf("\nA one-node Kubernetes runs (node %s at %s, API https://%s:%d):\n\n  export KUBECONFIG=%s\n  kubectl get nodes\n\nLogs: %s. Take it down with: make k8s-down\n",
		kubecluster.NodeName, kubecluster.NodeIP, kubecluster.NodeIP, kubecluster.APIPort, kubeconfig, filepath.Join(c.Dir, "logs"))
	return nil
}
