// Package rig starts the real services as child processes on free
// loopback ports: Consul dev agents (one per datacenter, joined over WAN),
// the S3-compatible server (versitygw) and this module's own binaries. It
// waits until each is ready, and stops each by PID. `make stack` uses it
// directly; the tests use it through internal/testenv, which ties each
// service to a test. It does not import package testing.
//
// The Consul and versitygw binaries are built by `make tools` into a
// per-user cache (see docs/TESTING.md).
package rig

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// CacheDir is where `make tools` leaves the service binaries:
// $XDG_CACHE_HOME/sentiment-analyzer-pro/bin, or ~/.cache/... without it.
func CacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "sentiment-analyzer-pro", "bin")
}

// Binary finds a service binary: the path in envVar if set, else name in
// CacheDir, else name on PATH.
func Binary(name, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cannot use %s=%q: %w", envVar, p, err)
		}
		return p, nil
	}
	p := filepath.Join(CacheDir(), name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("cannot find %s: set %s or run `make tools` to build it into %s", name, envVar, CacheDir())
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. The ports are
// released before returning, so a race with another process is possible but
// rare; Consul's UDP serf ports use the same numbers.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // TCP free but UDP taken: keep the listener, try another
		}
		udp.Close()
		ports = append(ports, port)
	}
	return ports, nil
}
