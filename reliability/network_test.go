package reliability

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

var netnsCount atomic.Int32

// netns is a network namespace joined to the host by a veth pair, with
// hostIP on the host side and nsIP inside.
type netns struct {
	name, hostIf, nsIf, hostIP, nsIP string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates the namespace and removes it when the test ends. It
// fails (does not skip) where namespaces cannot be made: the partition
// scenario must run.
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root (CI runs as root); run make reliability as root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run `make tools` (it installs iproute2 and iptables)", tool)
		}
	}
	n := int(netnsCount.Add(1))
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, n)
	sub := (os.Getpid()*7 + n) % 250
	ns := &netns{name: "sapr" + id, hostIf: "sra" + id, nsIf: "srb" + id,
		hostIP: fmt.Sprintf("10.213.%d.1", sub), nsIP: fmt.Sprintf("10.213.%d.2", sub)}
	run(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns.name).Run() // removes the veth pair too
		exec.Command("ip", "link", "del", ns.hostIf).Run()
	})
	run(t, "ip", "link", "add", ns.hostIf, "type", "veth", "peer", "name", ns.nsIf)
	run(t, "ip", "link", "set", ns.nsIf, "netns", ns.name)
	run(t, "ip", "addr", "add", ns.hostIP+"/30", "dev", ns.hostIf)
	run(t, "ip", "link", "set", ns.hostIf, "up")
	run(t, "ip", "netns", "exec", ns.name, "ip", "addr", "add", ns.nsIP+"/30", "dev", ns.nsIf)
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "set", ns.nsIf, "up")
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
	return ns
}

// cut drops every packet into and out of the namespace: connections hang,
// nothing is refused.
func (n *netns) cut(t *testing.T) {
	run(t, "ip", "netns", "exec", n.name, "iptables", "-A", "INPUT", "-j", "DROP")
	run(t, "ip", "netns", "exec", n.name, "iptables", "-A", "OUTPUT", "-j", "DROP")
}

func (n *netns) heal(t *testing.T) {
	run(t, "ip", "netns", "exec", n.name, "iptables", "-D", "INPUT", "-j", "DROP")
	run(t, "ip", "netns", "exec", n.name, "iptables", "-D", "OUTPUT", "-j", "DROP")
}

// TestPartition puts eu-west's edge in a network namespace and cuts it off
// while load for eu-west runs through the geo router.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	ns := newNetns(t)
	var s services
	addrs := freeAddrs(t, 3)
	euAddr := ns.nsIP + ":8080"
	s.startEdge(t, testenv.Edge{Name: "edge-eu-west (netns)", Addr: euAddr, Region: "eu-west", Netns: ns.name})
	s.edge(t, "us-east", addrs[0])
	s.edge(t, "ap-south", addrs[1])
	perTry := 200 * time.Millisecond
	s.geo(t, addrs[2], fmt.Sprintf("eu-west=%s,us-east=%s,ap-south=%s", euAddr, addrs[0], addrs[1]), perTry)

	rate := pick(300.0, 1000.0)
	l := startLoad("http://"+addrs[2]+"/v1/predict", "eu-west", rate, 256)
	time.Sleep(pick(2*time.Second, 10*time.Second))
	if _, n := l.ServedBy("eu-west"); n == 0 {
		t.Fatalf("eu-west served nothing before the cut: %s", l.Summary())
	}
	ns.cut(t)
	cutAt := time.Now()
	open := testenv.Until(t, 10*time.Second, "eu-west breaker opens or its edge leaves the view", func() bool {
		b, e := routeState(addrs[2], "eu-west")
		return b == "open" || e == 0
	})
	time.Sleep(pick(3*time.Second, 20*time.Second))
	lastDuring, _ := l.ServedBy("eu-west")
	ns.heal(t)
	healAt := time.Now()
	back := testenv.Until(t, 30*time.Second, "traffic returns to eu-west after healing", func() bool {
		last, _ := l.ServedBy("eu-west")
		return last.After(healAt)
	})
	time.Sleep(time.Second)
	l.Stop()
	t.Logf("load: %s", l.Summary())
	if l.Failed.Load() > 0 || l.Rejected.Load() > 0 {
		t.Errorf("%d failed and %d rejected client requests during the partition: %s", l.Failed.Load(), l.Rejected.Load(), l.Summary())
	}
	if lastDuring.After(cutAt.Add(time.Second)) {
		t.Errorf("eu-west still served a request %v after the cut", lastDuring.Sub(cutAt))
	}
	p99 := l.Quantile(0.99)
	if p99 > 2*perTry+500*time.Millisecond {
		t.Errorf("p99 %v: the per-try timeout (%v) should bound it", p99, perTry)
	}
	report(row{scenario: "partition (netns, packets dropped)", offered: fmt.Sprintf("%.0f/s", rate), requests: l.Sent.Load(),
		failed: l.Failed.Load() + l.Rejected.Load(), p99: p99,
		recovery: fmt.Sprintf("breaker %v, back %v", open.Round(time.Millisecond), back.Round(time.Millisecond)),
		note:     "per-try timeout 200ms"})
	s.checkLogs(t)
}

// TestSlowRegion puts a proxy in front of eu-west's edge and, once load
// runs, makes it delay every response by a second.
func TestSlowRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	var s services
	addrs := freeAddrs(t, 4)
	s.edge(t, "eu-west", addrs[0])
	s.edge(t, "us-east", addrs[1])
	var delay atomic.Int64
	slow := slowProxy(t, addrs[0], &delay)
	perTry := 200 * time.Millisecond
	s.geo(t, addrs[2], fmt.Sprintf("eu-west=%s,us-east=%s", slow, addrs[1]), perTry)

	rate := pick(300.0, 1000.0)
	l := startLoad("http://"+addrs[2]+"/v1/predict", "eu-west", rate, 512)
	time.Sleep(pick(2*time.Second, 10*time.Second))
	if _, n := l.ServedBy("eu-west"); n == 0 {
		t.Fatalf("eu-west served nothing before it slowed down: %s", l.Summary())
	}
	delay.Store(int64(time.Second))
	slowAt := time.Now()
	time.Sleep(pick(5*time.Second, 60*time.Second))
	l.Stop()
	lastFast, _ := l.ServedBy("eu-west")
	t.Logf("load: %s", l.Summary())
	p99 := l.Quantile(0.99)
	if l.Failed.Load() > 0 || l.Rejected.Load() > 0 {
		t.Errorf("client errors with a slow region: %s", l.Summary())
	}
	// One per-try timeout, then the next region's answer.
	if p99 > perTry+300*time.Millisecond {
		t.Errorf("p99 %v through the router, want it bounded by the per-try timeout %v", p99, perTry)
	}
	b, _ := routeState(addrs[2], "eu-west")
	report(row{scenario: "region turns slow (+1s per response)", offered: fmt.Sprintf("%.0f/s", rate), requests: l.Sent.Load(),
		failed: l.Failed.Load() + l.Rejected.Load(), p99: p99,
		recovery: fmt.Sprintf("last eu-west answer %v after it slowed", lastFast.Sub(slowAt).Round(time.Millisecond)),
		note:     "per-try timeout 200ms; eu-west breaker " + b + " at the end"})
	s.checkLogs(t)
}

// slowProxy forwards HTTP requests to target after the current delay and
// returns its address.
func slowProxy(t *testing.T, target string, delay *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client := &fasthttp.Client{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if !strings.HasPrefix(string(ctx.Path()), "/health") {
			time.Sleep(time.Duration(delay.Load()))
		}
		req := &ctx.Request
		req.SetHost(target)
		if err := client.Do(req, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}
