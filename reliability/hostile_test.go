package reliability

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
)

// TestHostileInput sends the edge, the geo router and the registry what
// an attacker or a broken client would: oversized headers and bodies,
// slow clients, path traversal in names. Each must answer with a clear 4xx
// (or close the connection), stay up, and log neither tokens nor texts.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	var s services
	addrs := freeAddrs(t, 3)
	edgeAddr, geoAddr, regAddr := addrs[0], addrs[1], addrs[2]
	s.edge(t, "us-east", edgeAddr)
	s.geo(t, geoAddr, "us-east="+edgeAddr, 300*time.Millisecond)
	storeDir := t.TempDir()
	s.procs = append(s.procs, registrytest.StartBinary(t, registrytest.Binary{Addr: regAddr, Dir: storeDir}).Proc)
	client := &http.Client{Timeout: 5 * time.Second}
	var cases, passed int
	expect := func(what, method, url, token string, body string, header map[string]string, ok func(code int) bool) {
		t.Helper()
		cases++
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			// Closing the connection on an absurd request is acceptable:
			// a server that answers 413 and closes while the client is
			// still sending a large body shows up here as a reset.
			if strings.Contains(what, "header") || strings.Contains(what, "MiB body") {
				passed++
				return
			}
			t.Errorf("%s: %v", what, err)
			return
		}
		resp.Body.Close()
		if !ok(resp.StatusCode) {
			t.Errorf("%s: status %d", what, resp.StatusCode)
			return
		}
		passed++
	}
	is := func(codes ...int) func(int) bool {
		return func(c int) bool {
			for _, want := range codes {
				if c == want {
					return true
				}
			}
			return false
		}
	}
	huge := strings.Repeat("a", 2<<20)
	bigHeader := map[string]string{"X-Junk": strings.Repeat("b", 256<<10)}
	text := `{"text":"` + marker + ` hostile"}`
	var zipped strings.Builder
	zw := gzip.NewWriter(&zipped)
	fmt.Fprintf(zw, `{"text":"%s"}`, strings.Repeat(" ", 16<<20))
	zw.Close()
	bomb := zipped.String()
	for _, svc := range []struct{ name, url string }{{"edge", "http://" + edgeAddr}, {"geo", "http://" + geoAddr}} {
		expect(svc.name+" 256 KiB header", "POST", svc.url+"/v1/predict", "", text, bigHeader, is(400, 413, 431))
		expect(svc.name+" 2 MiB body", "POST", svc.url+"/v1/predict", "", `{"text":"`+huge+`"}`, nil, is(413))
		expect(svc.name+" traversal in OIP model name", "POST", svc.url+"/v2/models/..%2F..%2Fetc%2Fpasswd/infer", "", text, nil, is(400, 404))
		expect(svc.name+" not JSON", "POST", svc.url+"/v1/predict", "", "\x00\xff"+marker, nil, is(400))
		expect(svc.name+" gzip bomb (1 KiB to 16 MiB)", "POST", svc.url+"/v1/predict", "", bomb, map[string]string{"Content-Encoding": "gzip"}, is(413))
	}
	reg := "http://" + regAddr
	expect("registry 256 KiB header", "GET", reg+"/v1/models", readerToken, "", bigHeader, is(400, 431))
	expect("registry traversal in model name", "GET", reg+"/v1/models/..%2F..%2Fetc/versions/v1", readerToken, "", nil, is(400, 404))
	expect("registry traversal on create", "PUT", reg+"/v1/models/..%2Fescape/versions/v1", adminToken, `{"digest":"sha256:`+strings.Repeat("0", 64)+`"}`, nil, is(400))
	expect("registry traversal in digest", "GET", reg+"/v1/blobs/sha256:..%2F..%2Fetc%2Fpasswd", readerToken, "", nil, is(400, 404))
	expect("registry 2 MiB JSON", "PUT", reg+"/v1/models/m/versions/v1", adminToken, `{"description":"`+huge+`"}`, nil, is(400, 413))
	expect("registry garbage token", "GET", reg+"/v1/models", "garbage-"+marker, "", nil, is(401))
	// Nothing escaped the store directory.
	if _, err := os.Stat(filepath.Join(filepath.Dir(storeDir), "escape")); err == nil {
		t.Error("a model name escaped the store directory")
	}

	// Slow clients: 100 connections per service dribble a header a byte a
	// second. Others are still served; the servers drop the slow ones.
	slowStart := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	closedAfter := map[string]time.Duration{}
	for _, addr := range []string{edgeAddr, geoAddr, regAddr} {
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := slowClient(addr, 20*time.Second)
				mu.Lock()
				closedAfter[addr] = max(closedAfter[addr], d)
				mu.Unlock()
			}()
		}
	}
	time.Sleep(time.Second)
	for i := 0; i < 20; i++ {
		expect("edge during slowloris", "POST", "http://"+edgeAddr+"/v1/predict", "", text, nil, is(200))
		expect("geo during slowloris", "POST", "http://"+geoAddr+"/v1/predict", "", text, nil, is(200))
		expect("registry during slowloris", "GET", reg+"/health/live", "", "", nil, is(200))
	}
	wg.Wait()
	for addr, d := range closedAfter {
		if d >= 20*time.Second {
			t.Errorf("%s kept a slow client for %v", addr, d)
		}
	}
	for _, p := range s.procs {
		if !p.Running() {
			t.Errorf("%s died", p.Name)
		}
	}

	// A country database that is not one: the router refuses to start,
	// with a message, instead of crashing later.
	for _, bad := range []string{"/etc/hostname", writeTruncatedMMDB(t)} {
		out, err := testenv.RunGeo(t, testenv.Geo{Static: "us-east=" + edgeAddr, Args: []string{"-mmdb", bad}})
		cases++
		if err == nil || !strings.Contains(out, "cannot open MMDB") || strings.Contains(out, "panic") {
			t.Errorf("geo -mmdb %s: %v\n%s", bad, err, out)
		} else {
			passed++
		}
	}
	report(row{scenario: "hostile input", offered: fmt.Sprintf("%d cases, 300 slow clients", cases), requests: int64(cases), failed: int64(cases - passed),
		recovery: fmt.Sprintf("slow clients dropped after %v", maxDuration(closedAfter).Round(100*time.Millisecond)),
		note:     fmt.Sprintf("slowloris phase %v; logs free of tokens and texts", time.Since(slowStart).Round(100*time.Millisecond))})
	s.checkLogs(t, adminToken, readerToken, "garbage-"+marker)
}

// slowClient sends a request header a byte a second and returns when the
// server closes the connection (or limit passes).
func slowClient(addr string, limit time.Duration) time.Duration {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(limit))
	w := bufio.NewWriter(c)
	header := "POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 100)
	for i := 0; i < len(header) && time.Since(start) < limit; i++ {
		w.WriteByte(header[i])
		if w.Flush() != nil {
			return time.Since(start)
		}
		// A server that gave up answers or closes; check without blocking.
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil && !isTimeout(err) {
			return time.Since(start)
		} else if err == nil {
			return time.Since(start) // it answered (an error) instead of waiting
		}
	}
	return time.Since(start)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func maxDuration(m map[string]time.Duration) time.Duration {
	var d time.Duration
	for _, v := range m {
		d = max(d, v)
	}
	return d
}

// writeTruncatedMMDB writes the first KiB of a real MMDB when `make geoip`
// fetched one, else of a header-only file.
func writeTruncatedMMDB(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "truncated.mmdb")
	src := filepath.Join(filepath.Dir(rig.CacheDir()), "geoip", "dbip-country.mmdb")
	data, err := os.ReadFile(src)
	if err != nil || len(data) < 1024 {
		data = []byte("\xab\xcd\xefMaxMind.com")
	} else {
		data = data[:1024]
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
