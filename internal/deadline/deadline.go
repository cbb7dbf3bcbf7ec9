// Package deadline keeps the read and write deadlines of a server's
// connections with one watchdog per listener instead of a runtime timer
// per deadline.
//
// fasthttp sets three deadlines on every keep-alive request (the idle
// wait, the request read, the answer write). Each is a timer in the Go
// runtime, moved on every request: about 150 ns apiece on a 2-core VM,
// and 4 % of the edge's throughput against a constant-answer server
// (`bench -target … -reference …`). Here a deadline is a number stored
// under the connection's lock; a watchdog wakes every tick and expires
// the connections whose deadline has passed by arming the real deadline
// in the past, which fails the blocked read or write at once.
//
// The cost is precision: a deadline fires up to one tick late. A
// deadline set at or before the watchdog's last tick (a time already
// past) is armed at once. That suits timeouts of seconds against slow
// or idle clients, which is what servers set them for.
package deadline

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ServerTick is the tick the edge and the geo router use: their timeouts
// of 10 s and more fire within a quarter second of their time.
const ServerTick = 250 * time.Millisecond

// Listener wraps a net.Listener; its connections' deadlines are kept by
// the listener's watchdog.
type Listener struct {
	net.Listener
	tick time.Duration

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	done   chan struct{} // closed when the watchdog stops

	lastTick atomic.Int64 // UnixNano of the watchdog's last tick
}

// NewListener wraps ln. tick is how late a deadline may fire; the
// watchdog runs until ln is closed and its last connection too.
func NewListener(ln net.Listener, tick time.Duration) *Listener {
	l := &Listener{Listener: ln, tick: tick, conns: map[*conn]struct{}{}, done: make(chan struct{})}
	l.lastTick.Store(time.Now().UnixNano())
	go l.watch()
	return l
}

// Accept returns the next connection, its deadlines kept by the watchdog.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &conn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[dc] = struct{}{}
	l.mu.Unlock()
	return dc, nil
}

// Close closes the listener; connections accepted before keep their
// deadlines until they close.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// Tracked returns how many connections the watchdog keeps.
func (l *Listener) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Done is closed when the watchdog has stopped: the listener is closed
// and so is every connection it accepted.
func (l *Listener) Done() <-chan struct{} { return l.done }

func (l *Listener) watch() {
	defer close(l.done)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for now := range t.C {
		l.lastTick.Store(now.UnixNano())
		l.mu.Lock()
		for c := range l.conns {
			c.expire(now.UnixNano())
		}
		stop := l.closed && len(l.conns) == 0
		l.mu.Unlock()
		if stop {
			return
		}
	}
}

func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// conn is a connection whose deadlines the watchdog enforces.
type conn struct {
	net.Conn
	l *Listener

	mu          sync.Mutex
	read, write deadline
}

// deadline is one direction's deadline: at (UnixNano, 0 for none), and
// whether the real deadline is armed in the past because at passed.
type deadline struct {
	at    int64
	armed bool
}

func (c *conn) SetReadDeadline(t time.Time) error {
	return c.set(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.set(&c.write, t, c.Conn.SetWriteDeadline)
}

func (c *conn) SetDeadline(t time.Time) error {
	rerr := c.SetReadDeadline(t)
	werr := c.SetWriteDeadline(t)
	if rerr != nil {
		return rerr
	}
	return werr
}

// set records t as d. Only a deadline already past, or one replacing an
// armed deadline, touches the real connection.
func (c *conn) set(d *deadline, t time.Time, real func(time.Time) error) error {
	at := int64(0)
	if !t.IsZero() {
		at = t.UnixNano()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d.at = at
	switch {
	case at != 0 && at <= c.l.lastTick.Load():
		d.armed = true
		return real(t)
	case d.armed:
		d.armed = false
		return real(time.Time{})
	}
	return nil
}

// expire arms the real deadlines that have passed by now, which fails a
// blocked read or write at once.
func (c *conn) expire(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := &c.read; d.at != 0 && d.at <= now && !d.armed {
		d.armed = true
		_ = c.Conn.SetReadDeadline(time.Unix(0, d.at))
	}
	if d := &c.write; d.at != 0 && d.at <= now && !d.armed {
		d.armed = true
		_ = c.Conn.SetWriteDeadline(time.Unix(0, d.at))
	}
}

func (c *conn) Close() error {
	c.l.forget(c)
	return c.Conn.Close()
}
