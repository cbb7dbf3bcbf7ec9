// Package testenv is the real-service test rig: it starts Consul agents (one
// per datacenter, joined over WAN) and an S3-compatible server (versitygw) as
// child processes on free loopback ports, waits until they are ready, and
// stops them by PID when the test or package is done.
//
// The binaries are built by `make tools` into a per-user cache (see
// docs/TESTING.md). Tests that need them call Consul(t, ...) or S3(t); in
// -short mode those calls skip the test, and otherwise a missing binary fails
// it, so CI can never pass without the real services.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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

// skipShort skips t in -short mode; real-service tests run everywhere else.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-service test: skipped in -short mode")
	}
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

// GeoIPDatabase returns the path of the DB-IP country database that
// `make geoip` leaves in the cache (or $SAP_GEOIP_MMDB). It skips t in
// -short mode and fails it when the file is missing.
func GeoIPDatabase(t testing.TB) string {
	t.Helper()
	skipShort(t)
	p := os.Getenv("SAP_GEOIP_MMDB")
	if p == "" {
		p = filepath.Join(filepath.Dir(CacheDir()), "geoip", "dbip-country.mmdb")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("cannot use the DB-IP country database: %v; run `make geoip`", err)
	}
	return p
}
