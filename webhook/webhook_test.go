package webhook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/regclient"
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
		e    registry.AuditEntry
		want string
	}{
		{registry.AuditEntry{Action: "publish", Result: "ok"}, regclient.EventVersionPublished},
		{registry.AuditEntry{Action: "publish", Result: "refused"}, ""},
		{registry.AuditEntry{Action: "promote", Result: "ok"}, regclient.EventChannelMoved},
		{registry.AuditEntry{Action: "set_candidate", Result: "ok"}, regclient.EventChannelMoved},
		{registry.AuditEntry{Action: "promote", Result: "refused", Detail: "conflict: quality gate refused: v3 accuracy …"}, regclient.EventGateRefused},
		{registry.AuditEntry{Action: "rollout_start", Result: "refused", Detail: "quality gate refused: …"}, regclient.EventGateRefused},
		{registry.AuditEntry{Action: "promote", Result: "denied"}, ""},
		{registry.AuditEntry{Action: "rollout_step", Result: "ok"}, regclient.EventRolloutStep},
		{registry.AuditEntry{Action: "rollout_rollback", Result: "ok"}, regclient.EventRolloutRollback},
		{registry.AuditEntry{Action: "rollout_superseded", Result: "ok"}, regclient.EventRolloutAborted},
		{registry.AuditEntry{Action: "auth_denied", Result: "denied"}, ""},
		{registry.AuditEntry{Action: "webhook_subscribe", Result: "ok"}, ""},
	} {
		if got := EventType(c.e); got != c.want {
			t.Errorf("%s/%s: %q, want %q", c.e.Action, c.e.Result, got, c.want)
		}
	}
}

func TestWants(t *testing.T) {
	created := time.Unix(1000, 0)
	s := regclient.Subscription{Events: []string{regclient.EventChannelMoved}, Models: []string{"m"}, CreatedAt: created}
	if !wants(s, regclient.EventChannelMoved, "m", created) {
		t.Error("a matching event at creation time was not wanted")
	}
	for _, c := range []struct {
		event, model string
		at           time.Time
	}{
		{regclient.EventVersionPublished, "m", created},
		{regclient.EventChannelMoved, "other", created},
		{regclient.EventChannelMoved, "m", created.Add(-time.Second)},
	} {
		if wants(s, c.event, c.model, c.at) {
			t.Errorf("wanted %+v", c)
		}
	}
	if !wants(regclient.Subscription{}, regclient.EventGateRefused, "any", created) {
		t.Error("a subscription with no filters does not get everything")
	}
}

func TestValidateRefusesBadSubscriptions(t *testing.T) {
	for name, ns := range map[string]regclient.NewSubscription{
		"no url":        {},
		"ftp":           {URL: "ftp://h/x"},
		"no host":       {URL: "http:///x"},
		"credentials":   {URL: "https://user:pw@h/x"},
		"unknown event": {URL: "https://h/x", Events: []string{"model.exploded"}},
		"bad model":     {URL: "https://h/x", Models: []string{"../m"}},
		"long":          {URL: "https://h/" + strings.Repeat("x", 3000)},
	} {
		if err := validate(ns); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := validate(regclient.NewSubscription{URL: "https://h/x", Events: regclient.EventTypes, Models: []string{"m"}}); err != nil {
		t.Error(err)
	}
}

func TestFailuresCountSinceTheLastRedelivery(t *testing.T) {
	as := []regclient.Attempt{{StatusCode: 500}, {Error: "refused"}, {Error: redelivered + " by alice"}, {StatusCode: 503}}
	if n := failures(as); n != 1 {
		t.Errorf("failures = %d, want 1", n)
	}
	if n := failures(as[:2]); n != 2 {
		t.Errorf("failures = %d, want 2", n)
	}
	if n := failures(append(as, regclient.Attempt{StatusCode: 204})); n != 0 {
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
	sub, err := m.Subscribe(ctx, regclient.NewSubscription{URL: "http://127.0.0.1:1/h"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e := registry.AuditEntry{ID: "1-x", Action: "publish", Result: "ok", Model: "m", Time: time.Now()}
	if err := m.enqueue(ctx, sub, regclient.EventVersionPublished, e); err != nil {
		t.Fatal(err)
	}
	// The last attempt succeeded and is recorded...
	d, err := m.readDelivery(ctx, sub.ID, "msg_1-x")
	if err != nil {
		t.Fatal(err)
	}
	d.Status = regclient.DeliveryDelivered
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
