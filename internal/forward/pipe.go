package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Pipe carries requests to one upstream over one connection, pipelined
// (RFC 9112 §9.3.2): requests are written back to back and the answers
// read in the same order. Writes are combined: a request goes into a
// shared buffer, and the flush waits until the goroutines that are ready
// to run have added theirs (runtime.Gosched), so under load one write
// carries many requests and one read many answers, with no timer and no
// wait when a request is alone. fasthttp's PipelineClient writes each
// request on its own when the process has one CPU: its writer runs as soon
// as the caller blocks.
//
// Each answer must arrive within Timeout of its request (the reader's
// read deadline: no timer per request). The deadline moves only when the
// next request's lies beyond it by more than Timeout/16, or before it:
// moving it costs a runtime timer and a clock read, about 1 % of the
// router's CPU when done for every answer, so an answer may fail up to
// Timeout/16 early, never late. A failure (an answer late, a
// broken connection, an answer that closes the connection) fails every
// request in flight on the connection; the next request dials a new one.
type Pipe struct {
	Addr string
	// TLS, when set, speaks TLS with this configuration.
	TLS *tls.Config
	// Timeout bounds dialing and each request's wait for its answer.
	Timeout time.Duration
	// MaxPending caps the requests in flight on the connection (default
	// 4096); past it a request fails at once.
	MaxPending int

	mu   sync.Mutex
	conn *pipeConn // nil until the first request, and after a failure
}

// pipeConn is one connection of a Pipe and the requests in flight on it.
type pipeConn struct {
	c      net.Conn
	bw     *bufio.Writer
	calls  chan *call    // written, in order, awaiting their answers
	flush  chan struct{} // a flush is queued (cap 1)
	queued bool          // under Pipe.mu: a flush is queued
	closed chan struct{}
	once   sync.Once
}

// call is one request in flight: its answer is read into resp (the
// caller's, who waits for done), then done delivers the outcome.
type call struct {
	resp *fasthttp.Response
	sent time.Time
	done chan error
}

var (
	calls = sync.Pool{New: func() any { return &call{done: make(chan error, 1)} }}
	// ErrPipeFull is a request refused because MaxPending are in flight.
	ErrPipeFull = errors.New("too many requests in flight on the connection")
	// errConnClose is the upstream closing the connection after an answer.
	errConnClose = errors.New("the upstream closed the connection")
)

// idleClose closes a connection nothing was sent on for this long, before
// an upstream's own idle timeout (60 s at the edge) races a new request.
const idleClose = 30 * time.Second

// Do sends req and reads the answer into resp; it must arrive within
// Timeout of start (the attempt's start, which the caller has read).
func (p *Pipe) Do(req *fasthttp.Request, resp *fasthttp.Response, start time.Time) error {
	c := calls.Get().(*call)
	c.resp, c.sent = resp, start
	resp.SkipBody = req.Header.IsHead()
	if err := p.send(req, c); err != nil {
		c.resp = nil
		calls.Put(c)
		return err
	}
	err := <-c.done
	c.resp = nil
	calls.Put(c)
	return err
}

// send writes req on the connection (dialing one if needed) and queues c
// for its answer.
func (p *Pipe) send(req *fasthttp.Request, c *call) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		pc, err := p.dial()
		if err != nil {
			return err
		}
		p.conn = pc
	}
	pc := p.conn
	if len(pc.calls) == cap(pc.calls) {
		return ErrPipeFull
	}
	if err := req.Write(pc.bw); err != nil {
		p.failLocked(pc)
		return fmt.Errorf("cannot write to %s: %w", p.Addr, err)
	}
	pc.calls <- c
	if !pc.queued {
		pc.queued = true
		pc.flush <- struct{}{}
	}
	return nil
}

func (p *Pipe) dial() (*pipeConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	var c net.Conn
	var err error
	if p.TLS != nil {
		c, err = (&tls.Dialer{Config: p.TLS}).DialContext(ctx, "tcp", p.Addr)
	} else {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", p.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", p.Addr, err)
	}
	max := p.MaxPending
	if max <= 0 {
		max = 4096
	}
	pc := &pipeConn{c: c, bw: bufio.NewWriterSize(c, 16<<10), calls: make(chan *call, max),
		flush: make(chan struct{}, 1), closed: make(chan struct{})}
	go p.flusher(pc)
	go p.reader(pc)
	return pc, nil
}

// flusher writes the buffered requests out, after letting the goroutines
// ready to run add theirs.
func (p *Pipe) flusher(pc *pipeConn) {
	for {
		select {
		case <-pc.flush:
		case <-pc.closed:
			return
		}
		runtime.Gosched()
		p.mu.Lock()
		pc.queued = false
		err := pc.bw.Flush()
		p.mu.Unlock()
		if err != nil {
			p.fail(pc, err)
			return
		}
	}
}

// reader reads the answers, in order, into the calls waiting for them.
func (p *Pipe) reader(pc *pipeConn) {
	br := bufio.NewReaderSize(pc.c, 16<<10)
	idle := time.NewTimer(idleClose)
	defer idle.Stop()
	var armed time.Time // the read deadline in force
	for {
		var c *call
		select {
		case c = <-pc.calls:
		default:
			idle.Reset(idleClose)
			select {
			case c = <-pc.calls:
			case <-idle.C:
				if p.closeIdle(pc) {
					return
				}
				continue
			case <-pc.closed:
				return
			}
		}
		if due := c.sent.Add(p.Timeout); due.Before(armed) || due.Sub(armed) > p.Timeout/16 {
			if err := pc.c.SetReadDeadline(due); err != nil {
				p.fail(pc, err)
				c.done <- err
				return
			}
			armed = due
		}
		if err := c.resp.Read(br); err != nil {
			// Out of use before the caller hears back, so its next
			// request dials anew rather than queue behind the failure.
			p.fail(pc, err)
			c.done <- fmt.Errorf("cannot read an answer from %s: %w", p.Addr, err)
			return
		}
		closes := c.resp.ConnectionClose()
		if closes {
			// Out of use before the caller hears back, so its next
			// request dials anew.
			p.mu.Lock()
			p.failLocked(pc)
			p.mu.Unlock()
		}
		c.done <- nil
		if closes {
			p.fail(pc, errConnClose)
			return
		}
	}
}

// closeIdle closes pc if nothing is in flight on it, so no request races
// the close.
func (p *Pipe) closeIdle(pc *pipeConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(pc.calls) > 0 {
		return false
	}
	p.failLocked(pc)
	return true
}

// fail takes pc out of use, closes it and fails the requests in flight on
// it with err.
func (p *Pipe) fail(pc *pipeConn, err error) {
	p.mu.Lock()
	p.failLocked(pc)
	p.mu.Unlock()
	for {
		select {
		case c := <-pc.calls:
			c.done <- fmt.Errorf("request to %s lost: %w", p.Addr, err)
		default:
			return
		}
	}
}

// failLocked detaches and closes pc; p.mu is held.
func (p *Pipe) failLocked(pc *pipeConn) {
	if p.conn == pc {
		p.conn = nil
	}
	pc.once.Do(func() {
		close(pc.closed)
		pc.c.Close()
	})
}
