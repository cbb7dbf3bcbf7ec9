package service

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeProfilerOffByDefault(t *testing.T) {
	var f Flags
	if err := f.ServeProfiler(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}

func TestServeProfilerOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := Flags{PprofListen: addr}
	if err := f.ServeProfiler(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("profiler answered %d: %.200s", resp.StatusCode, body)
	}
}

func TestServeProfilerRefusesOtherAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.invalid:6060", "no-port"} {
		f := Flags{PprofListen: addr}
		err := f.ServeProfiler(slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "-pprof-listen") {
			t.Errorf("-pprof-listen %s: err %v, want a refusal naming the flag", addr, err)
		}
	}
}

// Two pods of one region on one node register with the node's Consul
// agent on the same port: their IDs must differ, or the second replaces
// the first and the first's deregistration at shutdown removes both.
func TestRegistrationIDsOfPodsOnOneNode(t *testing.T) {
	f := Flags{ServiceName: "sentiment-edge"}
	ids := map[string]bool{}
	for _, adv := range []string{"10.244.0.5:8080", "10.244.0.6:8080", "[fd00::6]:8080"} {
		f.Advertise = adv
		r, err := f.Registration(":8080", "eu-west", true)
		if err != nil {
			t.Fatal(err)
		}
		ids[r.ID] = true
	}
	if len(ids) != 3 {
		t.Errorf("IDs %v: want three distinct", ids)
	}
	f.Advertise = "10.244.0.5:8080"
	if r, _ := f.Registration(":8080", "eu-west", true); r.ID != "sentiment-edge-eu-west-10-244-0-5-8080" {
		t.Errorf("ID %q", r.ID)
	}
}
