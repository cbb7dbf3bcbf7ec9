package testenv

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// CutProxy forwards TCP to a target HTTP server. The first answer to a
// GET of /v1/blobs/… (an artifact download, from a registry or a peer) is
// cut after cutAt bytes of it: the proxy stops forwarding, gives the
// client time to read what it got, and resets the connection. It records
// every request's Range header.
type CutProxy struct {
	target string
	cutAt  int
	mu     sync.Mutex
	ranges []string
	cut    bool
}

// StartCutProxy runs a CutProxy to target until the test ends; its URL is
// returned with it.
func StartCutProxy(t testing.TB, target string, cutAt int) (*CutProxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &CutProxy{target: target, cutAt: cutAt}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c.(*net.TCPConn))
		}
	}()
	return p, "http://" + ln.Addr().String()
}

func (p *CutProxy) serve(client *net.TCPConn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	br := bufio.NewReader(client)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.ranges = append(p.ranges, req.Header.Get("Range"))
		cutThis := !p.cut && req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/blobs/")
		p.cut = p.cut || cutThis
		p.mu.Unlock()
		if err := req.Write(server); err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(server), req)
		if err != nil {
			return
		}
		if !cutThis {
			resp.Write(client)
			resp.Body.Close()
			continue
		}
		// Headers and the first cutAt bytes of the body, then a reset.
		resp.ContentLength, resp.TransferEncoding = -1, nil
		var head bytes.Buffer
		resp.Header.Write(&head)
		io.WriteString(client, "HTTP/1.1 "+resp.Status+"\r\n"+head.String()+"\r\n")
		io.CopyN(client, resp.Body, int64(p.cutAt))
		time.Sleep(300 * time.Millisecond)
		client.SetLinger(0)
		return
	}
}

// Ranges returns the Range header of every request so far ("" without).
func (p *CutProxy) Ranges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}
