package deadline

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

const tick = 20 * time.Millisecond

// pair returns a server-side connection accepted by a deadline Listener
// and the client's end.
func pair(t *testing.T) (*Listener, net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, tick)
	t.Cleanup(func() { l.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return l, server, client
}

// readErr reads one byte from c in the background.
func readErr(c net.Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	return errc
}

// result waits for a background read's error, failing the test when it
// does not come (a deadline that never fires).
func result(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the read neither returned nor failed in 10 s")
		return nil
	}
}

func TestReadDeadlineFires(t *testing.T) {
	_, server, _ := pair(t)
	set := time.Now()
	if err := server.SetReadDeadline(set.Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	err := result(t, readErr(server))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read failed with %v, want a deadline error", err)
	}
	if waited := time.Since(set); waited < 100*time.Millisecond {
		t.Fatalf("the read failed after %v, before its deadline", waited)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a timeout net.Error", err)
	}
}

func TestLaterDeadlineKeepsConnection(t *testing.T) {
	_, server, client := pair(t)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	server.SetReadDeadline(time.Now().Add(time.Hour))
	errc := readErr(server)
	time.Sleep(10 * tick) // well past the first deadline
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := result(t, errc); err != nil {
		t.Fatalf("read failed with %v; the later deadline should have replaced the first", err)
	}
}

func TestExpiredConnectionUsableAfterNewDeadline(t *testing.T) {
	_, server, client := pair(t)
	server.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if err := result(t, readErr(server)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v, want a deadline error", err)
	}
	// As with net.Conn, a new deadline (here none) makes reads work again.
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errc := readErr(server)
	client.Write([]byte("x"))
	if err := result(t, errc); err != nil {
		t.Fatalf("read after clearing the deadline: %v", err)
	}
}

func TestPastDeadlineFailsAtOnce(t *testing.T) {
	_, server, _ := pair(t)
	server.SetDeadline(time.Now().Add(-time.Second))
	if err := result(t, readErr(server)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want a deadline error", err)
	}
}

func TestWriteDeadlineFires(t *testing.T) {
	_, server, _ := pair(t)
	server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	errc := make(chan error, 1)
	go func() {
		// The client never reads: the write blocks once the socket buffers fill.
		buf := make([]byte, 1<<20)
		for {
			if _, err := server.Write(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write failed with %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write deadline never fired")
	}
}

func TestClosedConnectionsForgotten(t *testing.T) {
	l, server, client := pair(t)
	if n := l.Tracked(); n != 1 {
		t.Fatalf("tracking %d connections, want 1", n)
	}
	server.Close()
	client.Close()
	if n := l.Tracked(); n != 0 {
		t.Fatalf("tracking %d connections after close, want 0", n)
	}
	l.Close()
	waitStopped(t, l)
}

func TestWatchdogOutlivesListenerWhileConnectionsLive(t *testing.T) {
	l, server, _ := pair(t)
	l.Close() // as in a graceful shutdown: the connection is still served
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := result(t, readErr(server)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error (deadlines must fire after the listener closed)", err)
	}
	server.Close()
	waitStopped(t, l)
}

// waitStopped fails the test unless l's watchdog stops within 10 s.
func waitStopped(t *testing.T, l *Listener) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog kept running after the listener and its last connection closed")
	}
}
