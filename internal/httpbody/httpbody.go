// Package httpbody bounds how long a net/http server waits on request
// bodies. A client that stops sending its body is cut off after an idle
// time, and an answer given before the body was read (a 401, say) goes
// out at once and closes the connection after a short linger: net/http
// would otherwise read up to 256 KiB of the unread body, with no
// deadline, before it sent the answer, so one client trickling a byte now
// and then held a connection for ever without a token.
package httpbody

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// linger is how long the server still reads a refused body after its
// answer, so that a client still sending reads the answer rather than a
// reset (closing a socket with unread bytes resets the connection, and the
// client's stack may drop the answer with it). net/http lingers as long
// after a body it gave up on.
const linger = 500 * time.Millisecond

// Guard wraps h so that a request with a body must keep it coming: some
// bytes at least every idle, else its reads fail. An answer written before
// the body was read to its end carries Connection: close.
func Guard(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &body{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
		b.extend()
		// The handler reads a copy of the request: net/http keeps its own
		// body to see, after the handler, that it was given up early, and
		// then lingers before it closes.
		guarded := *r
		guarded.Body = b
		h.ServeHTTP(&writer{ResponseWriter: w, body: b}, &guarded)
	})
}

// body extends the connection's read deadline as its bytes come. At the
// end, net/http lifts the deadline itself (its background read after the
// body must not cancel a handler that takes longer than idle).
type body struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done atomic.Bool // read to its end
}

func (b *body) extend() { _ = b.rc.SetReadDeadline(time.Now().Add(b.idle)) }

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch err {
	case io.EOF:
		b.done.Store(true)
	case nil:
		b.extend()
	}
	return n, err
}

// writer closes the connection after an answer sent before the body was
// read to its end (net/http reads no body once the answer has begun).
type writer struct {
	http.ResponseWriter
	body        *body
	wroteHeader bool
}

func (w *writer) WriteHeader(code int) {
	if code >= 200 && !w.wroteHeader { // 1xx answers are not the answer
		w.wroteHeader = true
		if !w.body.done.Load() {
			// Closing, net/http still reads what is left of the body
			// (up to 256 KiB) after the answer: a client sending it reads
			// the answer, a client trickling it is cut off after linger.
			w.Header().Set("Connection", "close")
			_ = w.body.rc.SetReadDeadline(time.Now().Add(linger))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
