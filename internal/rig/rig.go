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
	"math/rand/v2"
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

// FreePorts returns n distinct free TCP ports on 127.0.0.1 whose UDP
// twins are free too (Consul's serf ports use both). They are taken below
// the kernel's ephemeral range, so that no outgoing connection can take
// one while a service is restarted on it (a restarted Consul agent or S3
// server binds the same ports again). The ports are released before
// returning, so a race with another process is possible but rare.
func FreePorts(n int) ([]int, error) {
	lo, hi := 10000, ephemeralStart()-1
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("cannot find %d free ports in %d-%d", n, lo, hi)
		}
		addr := "127.0.0.1:0"
		if hi > lo {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo+1))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
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

// ephemeralStart is the first port the kernel gives outgoing connections
// (32768 when it cannot be read).
func ephemeralStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var start, end int
	if _, err := fmt.Sscan(string(data), &start, &end); err != nil || start <= 0 {
		return 32768
	}
	return start
}
