package forward

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// upstream serves on a loopback port: it answers each request with its
// X-N header after delay(n), or closes the connection when close(n).
func upstream(t *testing.T, delay func(n int) time.Duration, closeAfter func(n int) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		n, _ := strconv.Atoi(string(ctx.Request.Header.Peek("X-N")))
		time.Sleep(delay(n))
		if closeAfter(n) {
			ctx.SetConnectionClose()
		}
		ctx.SetBodyString("answer " + strconv.Itoa(n))
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func get(p *Pipe, n int) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + p.Addr + "/")
	req.Header.Set("X-N", strconv.Itoa(n))
	err := p.Do(req, resp, time.Now())
	return string(resp.Body()), err
}

// TestPipeMatchesAnswersToRequests: many goroutines share one connection;
// each gets its own answer.
func TestPipeMatchesAnswersToRequests(t *testing.T) {
	addr := upstream(t, func(int) time.Duration { return 0 }, func(int) bool { return false })
	p := &Pipe{Addr: addr, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := g*1000 + i
				body, err := get(p, n)
				if err != nil || body != fmt.Sprintf("answer %d", n) {
					errs <- fmt.Errorf("request %d: %q, %v", n, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPipeFailsLateAnswersAndRecovers: an answer later than Timeout fails
// its request (and the ones behind it), and the next request gets a new
// connection.
func TestPipeFailsLateAnswersAndRecovers(t *testing.T) {
	addr := upstream(t, func(n int) time.Duration {
		if n == 1 {
			return 2 * time.Second
		}
		return 0
	}, func(int) bool { return false })
	p := &Pipe{Addr: addr, Timeout: 200 * time.Millisecond}
	start := time.Now()
	if _, err := get(p, 1); err == nil {
		t.Fatal("a late answer did not fail")
	}
	if took := time.Since(start); took > 1900*time.Millisecond {
		t.Errorf("the late request failed after %v: it waited for the answer, not the timeout", took)
	}
	if body, err := get(p, 2); err != nil || body != "answer 2" {
		t.Fatalf("after a failure: %q, %v", body, err)
	}
}

// TestPipeMovesTheDeadlineForLaterRequests: the read deadline is not set
// per answer, but a request sent after the last deadline passed gets its
// own whole Timeout, and so does one sent while others wait.
func TestPipeMovesTheDeadlineForLaterRequests(t *testing.T) {
	addr := upstream(t, func(n int) time.Duration { return time.Duration(n) * time.Millisecond }, func(int) bool { return false })
	p := &Pipe{Addr: addr, Timeout: 600 * time.Millisecond}
	if body, err := get(p, 1); err != nil || body != "answer 1" {
		t.Fatalf("first request: %q, %v", body, err)
	}
	time.Sleep(700 * time.Millisecond) // the first request's deadline passes
	if body, err := get(p, 150); err != nil || body != "answer 150" {
		t.Fatalf("a request after the first's deadline passed: %q, %v", body, err)
	}
	// Requests pipelined 100 ms apart, each answered in 150 ms: each
	// must be judged by its own deadline, not the first one's.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := get(p, 150)
			errs <- err
		}()
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("a pipelined request within its time failed: %v", err)
		}
	}
}

// TestPipeUpstreamClosing: an answer that closes the connection is
// delivered; the next request dials again.
func TestPipeUpstreamClosing(t *testing.T) {
	addr := upstream(t, func(int) time.Duration { return 0 }, func(n int) bool { return n%2 == 0 })
	p := &Pipe{Addr: addr, Timeout: 2 * time.Second}
	for n := range 6 {
		if body, err := get(p, n); err != nil || body != "answer "+strconv.Itoa(n) {
			t.Fatalf("request %d: %q, %v", n, body, err)
		}
	}
}

// TestPipeNoUpstream: a refused connection is an error at once.
func TestPipeNoUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &Pipe{Addr: addr, Timeout: time.Second}
	if _, err := get(p, 1); err == nil {
		t.Fatal("no upstream: no error")
	}
}
