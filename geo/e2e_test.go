package geo_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

var regionDC = map[string]string{"us-east": "dc-us", "eu-west": "dc-eu", "ap-south": "dc-ap"}

// clientNets places loopback client addresses in countries.
var clientNets = map[string]string{"127.0.1.0/24": "US", "127.0.2.0/24": "IE", "127.0.3.0/24": "IN"}
var clientIP = map[string]string{"us-east": "127.0.1.7", "eu-west": "127.0.2.7", "ap-south": "127.0.3.7"}

func writeMMDB(t *testing.T) string {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "test-country", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, cc := range clientNets {
		_, n, _ := net.ParseCIDR(cidr)
		if err := tree.Insert(n, mmdbtype.Map{"country_code": mmdbtype.String(cc)}); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "country.mmdb")
	f, _ := os.Create(p)
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return p
}

type edgeProc struct {
	region, addr string
	proc         *testenv.Service
}

// client sends predictions through the geo router from a given loopback
// source address, optionally with a region hint.
func client(src string) *fasthttp.Client {
	return &fasthttp.Client{Dial: func(addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		return d.Dial("tcp", addr)
	}}
}

func predict(c *fasthttp.Client, geoAddr, hint string) (code int, served string, failovers string, err error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + geoAddr + "/v1/predict")
	if hint != "" {
		req.Header.Set("X-Region", hint)
	}
	req.SetBodyString(`{"text":"a wonderful film"}`)
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		return 0, "", "", err
	}
	return resp.StatusCode(), string(resp.Header.Peek("X-Served-Region")), string(resp.Header.Peek("X-Failovers")), nil
}

func TestEndToEnd(t *testing.T) {
	consul := testenv.Consul(t, "dc-us", "dc-eu", "dc-ap")
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "e2e")
	ports, _ := testenv.FreePorts(8)
	regAddr, geoAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	admin := registrytest.StartBinary(t, registrytest.Binary{Addr: regAddr, S3: s3srv, Bucket: bucket}).Admin
	ctx := context.Background()
	for i, v := range []string{"v1", "v2"} {
		registrytest.Publish(t, admin, "demo", v, testenv.TinyArtifact(t, uint64(i+1), 0))
	}
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}

	// Two edges per region, each registered in its region's datacenter.
	var edges []*edgeProc
	p := 2
	for _, region := range []string{"us-east", "eu-west", "ap-south"} {
		for n := 0; n < 2; n++ {
			e := &edgeProc{region: region, addr: fmt.Sprintf("127.0.0.1:%d", ports[p])}
			p++
			e.proc = testenv.StartEdge(t, testenv.Edge{Addr: e.addr, Region: region, Model: "demo", Registry: "http://" + regAddr,
				Token: registrytest.ReaderToken, Consul: consul.Agent(regionDC[region]).HTTPAddr()})
			edges = append(edges, e)
		}
	}
	testenv.StartGeo(t, testenv.Geo{Addr: geoAddr, Consul: consul.Agent("dc-us").HTTPAddr(), Datacenters: "us-east=dc-us,eu-west=dc-eu,ap-south=dc-ap",
		PerTry: "300ms", Args: []string{"-mmdb", writeMMDB(t)}})

	// Every region has its two edges in the router's view.
	waitRoute(t, geoAddr, 2, 20*time.Second)

	// Clients placed by hint and by address are served by their region.
	for region, ip := range clientIP {
		c := client(ip)
		if code, served, _, err := predict(c, geoAddr, ""); err != nil || code != 200 || served != region {
			t.Errorf("client %s (no hint): %d served by %q (%v), want %s", ip, code, served, err, region)
		}
		if code, served, _, err := predict(client("127.0.0.1"), geoAddr, region); err != nil || code != 200 || served != region {
			t.Errorf("hint %s: %d served by %q (%v)", region, code, served, err)
		}
	}

	// Steady load from eu-west clients; kill both eu-west edges.
	var stop atomic.Bool
	var failed, total atomic.Int64
	var mu sync.Mutex
	var lastEU time.Time
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(clientIP["eu-west"])
			for !stop.Load() {
				code, served, fo, err := predict(c, geoAddr, "")
				total.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
					continue
				}
				if served == "eu-west" || fo != "0" {
					mu.Lock()
					lastEU = time.Now()
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	for _, e := range edges {
		if e.region == "eu-west" {
			e.proc.Kill()
		}
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	shift := lastEU.Sub(killed)
	mu.Unlock()
	t.Logf("failover_shift_seconds=%.3f (%d requests during the kill, %d failed)", shift.Seconds(), total.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d client requests failed while eu-west died", failed.Load())
	}
	if shift > time.Second {
		t.Errorf("requests still reached eu-west %v after the kill, want <= 1s", shift)
	}

	// Bring eu-west back: traffic returns after its checks pass and the
	// breaker's half-open probe succeeds.
	back := time.Now()
	for _, e := range edges {
		if e.region == "eu-west" {
			if err := e.proc.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for {
		mu.Lock()
		returned := lastEU.After(back.Add(200 * time.Millisecond))
		mu.Unlock()
		if returned {
			c := client(clientIP["eu-west"])
			if _, served, _, _ := predict(c, geoAddr, ""); served == "eu-west" {
				break
			}
		}
		if time.Since(back) > 20*time.Second {
			t.Fatal("traffic did not return to eu-west within 20s of its restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("traffic back on eu-west %.3fs after its edges restarted", time.Since(back).Seconds())
	stop.Store(true)
	wg.Wait()

	// Promote v2: every edge in every region serves it within 2 s of
	// the acknowledgement.
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	var slowest time.Duration
	for _, e := range edges {
		d := waitEdgeVersion(t, e.addr, "v2", acked, 10*time.Second)
		slowest = max(slowest, d)
	}
	t.Logf("promote_propagation_seconds=%.3f (slowest of %d edges in 3 regions)", slowest.Seconds(), len(edges))
	if slowest > 2*time.Second {
		t.Errorf("an edge took %v to serve the promote, want <= 2s", slowest)
	}

	// Stop the Consul agent of dc-ap, then the geo router's own agent:
	// routing keeps working from the last view.
	consul.Agent("dc-ap").Process().Kill()
	consul.Agent("dc-us").Process().Kill()
	time.Sleep(time.Second)
	for region := range clientIP {
		if code, served, _, err := predict(client("127.0.0.1"), geoAddr, region); err != nil || code != 200 || served != region {
			t.Errorf("with Consul agents down, hint %s: %d served by %q (%v)", region, code, served, err)
		}
	}
}

// waitRoute waits until /v1/route lists n edges in every region.
func waitRoute(t *testing.T, geoAddr string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + geoAddr + "/v1/route")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if strings.Count(last, "http://127.0.0.1:") == 3*n {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("geo router never saw %d edges per region: %s", n, last)
}

func waitEdgeVersion(t *testing.T, addr, version string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for time.Since(since) < within {
		resp, err := c.Get("http://" + addr + "/health/ready")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"version":"`+version+`"`) {
				return time.Since(since)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("edge %s not serving %s within %v", addr, version, within)
	return 0
}
