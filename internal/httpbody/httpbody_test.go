package httpbody

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// send writes a request with Content-Length n and the first bytes of its
// body, then each of more after pause; it returns the connection.
func send(t *testing.T, addr string, n int, first string, more []string, pause time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n"+first); err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		time.Sleep(pause)
		if _, err := io.WriteString(c, m); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// answer reads the status line and headers, giving up after a while
// (generous: the answers under test come in milliseconds).
func answer(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return resp
}

// TestAnswerBeforeTheBodyClosesTheConnection: a handler that refuses a
// request without reading its body answers at once and closes the
// connection, rather than waiting on a body the client trickles.
func TestAnswerBeforeTheBodyClosesTheConnection(t *testing.T) {
	srv := httptest.NewServer(Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no token", http.StatusUnauthorized)
	}), time.Minute))
	defer srv.Close()
	c := send(t, srv.Listener.Addr().String(), 9, "ab", nil, 0) // 7 bytes never come
	resp := answer(t, c)
	if resp.StatusCode != 401 || !resp.Close {
		t.Errorf("answer %d, close %v; want 401 closing the connection", resp.StatusCode, resp.Close)
	}
	// The server closes its end rather than wait for the rest (the idle
	// time is a minute).
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer: %d bytes, %v; want the server to close", n, err)
	}
}

// TestStalledBodyIsCutOff: a body that stops coming fails the handler's
// read after the idle time; one that keeps trickling in does not, however
// long it takes in all.
func TestStalledBodyIsCutOff(t *testing.T) {
	const idle = time.Second
	srv := httptest.NewServer(Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		w.Write(b)
	}), idle))
	defer srv.Close()
	resp := answer(t, send(t, srv.Listener.Addr().String(), 9, "ab", nil, 0))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled body: %d, want 408", resp.StatusCode)
	}
	// Twelve more bytes, one each idle/10 (a tenth, so a busy machine's
	// late timers do not matter): longer than idle in all, never idle.
	resp = answer(t, send(t, srv.Listener.Addr().String(), 14, "ab", strings.Split("cdefghijklmn", ""), idle/10))
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "abcdefghijklmn" {
		t.Errorf("a trickled body: %d %q", resp.StatusCode, b)
	}
}

// TestDeadlineLiftedAfterTheBody: a handler that has read the body may
// take longer than the idle time; its request is not cancelled.
func TestDeadlineLiftedAfterTheBody(t *testing.T) {
	const idle = 100 * time.Millisecond
	srv := httptest.NewServer(Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		time.Sleep(5 * idle)
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}), idle))
	defer srv.Close()
	resp := answer(t, send(t, srv.Listener.Addr().String(), 2, "ab", nil, 0))
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || resp.Close {
		t.Errorf("%d %q close %v; want 200 keeping the connection", resp.StatusCode, b, resp.Close)
	}
}

// TestRefusedBodyStillGetsItsAnswer: a client still sending a body the
// handler refused (too large, or not read at all) reads the answer, not a
// connection reset. The server lingers after its answer, as net/http does
// on its own, so its close does not reset the client's unread answer away.
func TestRefusedBodyStillGetsItsAnswer(t *testing.T) {
	srv := httptest.NewServer(Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/unread" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10)); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "ok")
	}), time.Minute))
	defer srv.Close()
	for _, c := range []struct {
		path string
		size int
		want int
	}{
		{"/limited", 2 << 20, 413}, // more left than net/http would discard
		{"/limited", 128 << 10, 413},
		{"/unread", 2 << 20, 401},
		{"/unread", 128 << 10, 401},
	} {
		for i := 0; i < 20; i++ {
			req, _ := http.NewRequest("PUT", srv.URL+c.path, strings.NewReader(strings.Repeat("a", c.size)))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("%s with %d bytes, try %d: %v", c.path, c.size, i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Fatalf("%s with %d bytes: %d, want %d", c.path, c.size, resp.StatusCode, c.want)
			}
		}
	}
}
