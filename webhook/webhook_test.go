package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/clientip"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
	"github.com/sentimentpro/sentiment/store/dir"
)

// TestSignMatchesTheSpecificationVector: the Standard Webhooks
// specification's published example.
func TestSignMatchesTheSpecificationVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil || got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Errorf("Sign = %q, %v", got, err)
	}
	if _, err := Sign("whsec_not base64!", "msg_x", 1, nil); err == nil {
		t.Error("a secret that is not base64 signed")
	}
	if s := newSecret(); !strings.HasPrefix(s, "whsec_") || len(s) != len("whsec_")+44 {
		t.Errorf("secret %q", s)
	}
}

func TestEventTypes(t *testing.T) {
	for _, c := range []struct {
		e    wire.AuditEntry
		want string
	}{
		{wire.AuditEntry{Action: "publish", Result: "ok"}, wire.EventVersionPublished},
		{wire.AuditEntry{Action: "publish", Result: "refused"}, ""},
		{wire.AuditEntry{Action: "promote", Result: "ok"}, wire.EventChannelMoved},
		{wire.AuditEntry{Action: "set_candidate", Result: "ok"}, wire.EventChannelMoved},
		{wire.AuditEntry{Action: "promote", Result: "refused", Detail: "conflict: quality gate refused: v3 accuracy …"}, wire.EventGateRefused},
		{wire.AuditEntry{Action: "rollout_start", Result: "refused", Detail: "quality gate refused: …"}, wire.EventGateRefused},
		{wire.AuditEntry{Action: "promote", Result: "denied"}, ""},
		{wire.AuditEntry{Action: "rollout_step", Result: "ok"}, wire.EventRolloutStep},
		{wire.AuditEntry{Action: "rollout_rollback", Result: "ok"}, wire.EventRolloutRollback},
		{wire.AuditEntry{Action: "rollout_superseded", Result: "ok"}, wire.EventRolloutAborted},
		{wire.AuditEntry{Action: "auth_denied", Result: "denied"}, ""},
		{wire.AuditEntry{Action: "webhook_subscribe", Result: "ok"}, ""},
	} {
		if got := EventType(c.e); got != c.want {
			t.Errorf("%s/%s: %q, want %q", c.e.Action, c.e.Result, got, c.want)
		}
	}
}

func TestWants(t *testing.T) {
	created := time.Unix(1000, 0)
	s := wire.Subscription{Events: []string{wire.EventChannelMoved}, Models: []string{"m"}, CreatedAt: created}
	if !wants(s, wire.EventChannelMoved, "m", created) {
		t.Error("a matching event at creation time was not wanted")
	}
	for _, c := range []struct {
		event, model string
		at           time.Time
	}{
		{wire.EventVersionPublished, "m", created},
		{wire.EventChannelMoved, "other", created},
		{wire.EventChannelMoved, "m", created.Add(-time.Second)},
	} {
		if wants(s, c.event, c.model, c.at) {
			t.Errorf("wanted %+v", c)
		}
	}
	if !wants(wire.Subscription{}, wire.EventGateRefused, "any", created) {
		t.Error("a subscription with no filters does not get everything")
	}
	disabled := wire.Subscription{DisabledAt: created, DisabledReason: "410"}
	if wants(disabled, wire.EventGateRefused, "any", created.Add(time.Hour)) {
		t.Error("a disabled subscription wants events")
	}
	enabled := wire.Subscription{CreatedAt: created, EnabledAt: created.Add(time.Hour)}
	if wants(enabled, wire.EventGateRefused, "any", created.Add(time.Minute)) || !wants(enabled, wire.EventGateRefused, "any", created.Add(time.Hour)) {
		t.Error("a subscription enabled again wants the events from then on, and only those")
	}
}

func TestValidateRefusesBadSubscriptions(t *testing.T) {
	for name, ns := range map[string]wire.NewSubscription{
		"no url":        {},
		"ftp":           {URL: "ftp://h/x"},
		"no host":       {URL: "http:///x"},
		"credentials":   {URL: "https://user:pw@h/x"},
		"unknown event": {URL: "https://h/x", Events: []string{"model.exploded"}},
		"bad model":     {URL: "https://h/x", Models: []string{"../m"}},
		"long":          {URL: "https://h/" + strings.Repeat("x", 3000)},
	} {
		if err := validate(ns, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := validate(wire.NewSubscription{URL: "https://h/x", Events: wire.EventTypes, Models: []string{"m"}}, nil); err != nil {
		t.Error(err)
	}
}

func TestFailuresCountSinceTheLastRedelivery(t *testing.T) {
	as := []wire.Attempt{{StatusCode: 500}, {Error: "refused"}, {Error: redelivered + " by alice"}, {StatusCode: 503}}
	if n := failures(as); n != 1 {
		t.Errorf("failures = %d, want 1", n)
	}
	if n := failures(as[:2]); n != 2 {
		t.Errorf("failures = %d, want 2", n)
	}
	if n := failures(append(as, wire.Attempt{StatusCode: 204})); n != 0 {
		t.Errorf("after a success: %d", n)
	}
}

func TestParseSchedule(t *testing.T) {
	if s, err := ParseSchedule("5s, 5m,2h"); err != nil || len(s) != 3 || s[2] != 2*time.Hour {
		t.Errorf("%v %v", s, err)
	}
	for _, bad := range []string{"", "5s,,", "-1s", "soon"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRedeliveryDuringTheLastAttemptIsKept: a redelivery asked for while
// a replica finishes the delivery's last attempt is not lost when that
// replica removes the pending marker.
func TestRedeliveryDuringTheLastAttemptIsKept(t *testing.T) {
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Registry: reg, Store: st, ID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sub, err := m.Subscribe(ctx, wire.NewSubscription{URL: "http://127.0.0.1:1/h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e := wire.AuditEntry{ID: "1-x", Action: "publish", Result: "ok", Model: "m", Time: time.Now()}
	if err := m.enqueue(ctx, sub, wire.EventVersionPublished, e); err != nil {
		t.Fatal(err)
	}
	// The last attempt succeeded and is recorded...
	d, err := m.readDelivery(ctx, sub.ID, "msg_1-x")
	if err != nil {
		t.Fatal(err)
	}
	d.Status = wire.DeliveryDelivered
	if _, err := m.writeDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	// ...an operator redelivers before the marker is removed...
	if _, err := m.Redeliver(ctx, sub.ID, "msg_1-x", "bob"); err != nil {
		t.Fatal(err)
	}
	// ...and the replica removes the marker of what it delivered.
	if err := m.dropMarker(ctx, sub.ID, "msg_1-x"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, pendingKey(sub.ID, "msg_1-x")); err != nil {
		t.Errorf("the redelivery lost its pending marker: %v", err)
	}
}

// TestDefaultDenyCoversMetadataServices: the cloud metadata addresses,
// also written as IPv4-mapped IPv6, are denied by default; loopback,
// private and public addresses are not.
func TestDefaultDenyCoversMetadataServices(t *testing.T) {
	deny, err := clientip.ParsePrefixes(DefaultDeny)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::", "224.0.0.1", "255.255.255.255",
		"fe80::a9fe:a9fe%eth0", "fd00:ec2::254%eth0", "fe80::1%1"} { // a zone changes nothing the kernel dials
		if !denied(netip.MustParseAddr(a), deny) {
			t.Errorf("%s is not denied", a)
		}
	}
	for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "fd00::1", "93.184.216.34", "2001:db8::1"} {
		if denied(netip.MustParseAddr(a), deny) {
			t.Errorf("%s is denied", a)
		}
	}
}

// TestDeniedAddressesAreNeverReached: a subscription naming a denied
// address is refused, and a delivery to a name that resolves to one
// never connects; other addresses are reached as usual.
func TestDeniedAddressesAreNeverReached(t *testing.T) {
	var hits atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer rcv.Close()
	port := rcv.URL[strings.LastIndex(rcv.URL, ":")+1:]
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

	for _, u := range []string{rcv.URL + "/hook", "http://[::ffff:127.0.0.1]:" + port + "/hook", "https://[::1]/hook",
		"http://[::1%251]:" + port + "/hook", "http://[fe80::a9fe:a9fe%25eth0]/", "http://[2001:db8::1%25eth0]/"} {
		if err := validate(wire.NewSubscription{URL: u}, loopback); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("subscribing %s: %v, want invalid", u, err)
		}
	}
	if err := validate(wire.NewSubscription{URL: "http://localhost:" + port + "/hook"}, loopback); err != nil {
		t.Errorf("a name is checked when it is dialled, not before: %v", err)
	}

	refused := &http.Client{Transport: transport(loopback), Timeout: 5 * time.Second}
	for _, u := range []string{rcv.URL, "http://localhost:" + port, "http://[::1%251]:" + port} {
		resp, err := refused.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s went through a deny list holding it", u)
		} else if !strings.Contains(err.Error(), "denied to webhook deliveries") {
			t.Errorf("POST %s: %v, want the deny list named", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver saw %d requests through a deny list holding it", n)
	}
	allowed := &http.Client{Transport: transport([]netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}), Timeout: 5 * time.Second}
	resp, err := allowed.Post(rcv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("the receiver saw %d requests, want 1", hits.Load())
	}
}

func TestJitterSpreadsSubscriptionsNotDeliveries(t *testing.T) {
	const wait = 10 * time.Second
	seen := map[time.Duration]bool{}
	for i := range 1000 {
		sub := fmt.Sprintf("wh_%016x", i)
		got := jitter(wait, sub)
		if got < wait || got > wait+wait/10 {
			t.Fatalf("jitter(%v, %s) = %v, want within [%v, %v]", wait, sub, got, wait, wait+wait/10)
		}
		if again := jitter(wait, sub); again != got {
			t.Fatalf("one subscription's deliveries wait %v and %v: they would change order", got, again)
		}
		seen[got] = true
	}
	if len(seen) < 900 {
		t.Errorf("%d distinct waits for 1000 subscriptions: not spread", len(seen))
	}
	if got := jitter(0, "wh_1"); got != 0 {
		t.Errorf("jitter(0) = %v", got)
	}
}

// TestSignatureDuringAndAfterTheGrace: a rotated subscription's old secret
// signs beside the new one until its grace ends, and not after.
func TestSignatureDuringAndAfterTheGrace(t *testing.T) {
	rotatedAt := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := wire.Subscription{Secret: newSecret(), PreviousSecret: newSecret(), PreviousSecretExpiresAt: rotatedAt.Add(time.Hour)}
	body := []byte(`{"type":"version.published"}`)
	for _, tc := range []struct {
		at   time.Time
		sigs int
	}{{rotatedAt, 2}, {rotatedAt.Add(59 * time.Minute), 2}, {rotatedAt.Add(time.Hour), 1}, {rotatedAt.Add(48 * time.Hour), 1}} {
		sig, err := signature(s, "msg_1", tc.at, body)
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(sig)
		want, _ := Sign(s.Secret, "msg_1", tc.at.Unix(), body)
		if len(fields) != tc.sigs || fields[0] != want {
			t.Errorf("at %v: %q, want %d signatures, the new secret's first", tc.at, sig, tc.sigs)
		}
	}
}
