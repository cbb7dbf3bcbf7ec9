package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// verify checks a delivery the way the Standard Webhooks specification
// says a receiver does, written from the specification: the secret after
// "whsec_" is base64, the signed content is "id.timestamp.body", the
// signature HMAC-SHA256 in base64 after "v1,", one of several
// space-separated ones, and the timestamp within five minutes.
func verify(secret string, h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q timestamp %q signature %q", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q is not within five minutes", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		if version == "v1" && subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1 {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches", sigs)
}

// receiver is a webhook endpoint that can go down (its port refuses
// connections) and come back on the same address.
type receiver struct {
	t      *testing.T
	addr   string
	secret string
	mu     sync.Mutex
	srv    *http.Server
	seen   map[string]string // webhook-id -> event type
	order  []string          // event types in first-arrival order
	copies int               // deliveries received, duplicates included
}

func (r *receiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle)}
	go r.srv.Serve(ln)
}

func (r *receiver) down() { r.srv.Close() }

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := verify(r.secret, req.Header, body); err != nil {
		r.t.Errorf("delivery %s: %v", req.Header.Get("webhook-id"), err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p struct {
		Type string `json:"type"`
		Data struct {
			Action, Version string
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Type == "" {
		r.t.Errorf("delivery body %s: %v", body, err)
	}
	r.copies++
	id := req.Header.Get("webhook-id")
	if _, dup := r.seen[id]; !dup {
		r.seen[id] = p.Type
		r.order = append(r.order, p.Type+" "+p.Data.Action+" "+p.Data.Version)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

func waitEvents(t *testing.T, r *receiver, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(r.events()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d events within %v, want %d: %q", len(r.events()), within, n, r.events())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // nothing more comes
	return r.events()
}

// TestWebhooksOnTheRig: two registry replicas on one S3 bucket send a
// publish, promote, rollback sequence to a receiver once each, signed;
// events made while the receiver is down, across a restart of both
// replicas, arrive once it is back.
func TestWebhooksOnTheRig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs S3 and two registry binaries")
	}
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "hooks")
	ports, err := testenv.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*registrytest.Server
	var urls []string
	for i := 0; i < 2; i++ {
		rep := registrytest.StartBinary(t, registrytest.Binary{Addr: fmt.Sprintf("127.0.0.1:%d", ports[i]), S3: s3srv, Bucket: bucket,
			Args: []string{"-webhook-tick", "200ms", "-webhook-retry-schedule", "300ms,500ms,1s,1s,2s,2s,2s,2s,2s,2s,2s,2s"}})
		replicas = append(replicas, rep)
		urls = append(urls, rep.URL)
	}
	admin := &regclient.Client{BaseURL: strings.Join(urls, ","), Token: registrytest.AdminToken}
	publisher := &regclient.Client{BaseURL: admin.BaseURL, Token: registrytest.PublisherToken}
	ctx := context.Background()
	rcv := &receiver{t: t, addr: fmt.Sprintf("127.0.0.1:%d", ports[2]), seen: map[string]string{}}
	rcv.up()
	t.Cleanup(rcv.down)
	sub, err := admin.Subscribe(ctx, wire.NewSubscription{URL: "http://" + rcv.addr + "/hook", Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sub.Secret, "whsec_") {
		t.Fatalf("secret %q", sub.Secret)
	}
	rcv.mu.Lock()
	rcv.secret = sub.Secret
	rcv.mu.Unlock()
	if subs, err := admin.Subscriptions(ctx); err != nil || len(subs) != 1 || subs[0].Secret != "" {
		t.Fatalf("listed subscriptions %+v (%v): the secret is shown once", subs, err)
	}
	time.Sleep(500 * time.Millisecond) // the dispatchers' cursor exists
	promote := func(v string) {
		if _, err := admin.Promote(ctx, "m", "production", wire.MoveRequest{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	registrytest.Publish(t, publisher, "m", "v1", testenv.TinyArtifact(t, 1, 0.9))
	promote("v1")
	registrytest.Publish(t, publisher, "m", "v2", testenv.TinyArtifact(t, 2, 0.9))
	promote("v2")
	if _, err := admin.Rollback(ctx, "m", "production", wire.MoveRequest{}); err != nil {
		t.Fatal(err)
	}
	// A worse model: the quality gate refuses it, and that is an event too.
	registrytest.Publish(t, publisher, "m", "v3", testenv.TinyArtifact(t, 3, 0.5))
	if _, err := admin.Promote(ctx, "m", "production", wire.MoveRequest{Version: "v3"}); err == nil {
		t.Fatal("the gate let v3 through")
	}
	got := waitEvents(t, rcv, 7, 30*time.Second)
	want := []string{
		"version.published publish v1", "channel.moved promote v1", "version.published publish v2", "channel.moved promote v2",
		"channel.moved rollback v1", "version.published publish v3", "gate.refused promote v3",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rcv.mu.Lock()
	t.Logf("%d events, %d deliveries received (one replica sends each)", len(rcv.order), rcv.copies)
	if rcv.copies != len(rcv.order) {
		t.Errorf("%d deliveries for %d events: a replica sent one twice", rcv.copies, len(rcv.order))
	}
	rcv.mu.Unlock()

	// The receiver goes down; two events; both replicas restart; it
	// comes back after several failed attempts.
	rcv.down()
	promote("v2")
	registrytest.Publish(t, publisher, "m", "v4", testenv.TinyArtifact(t, 4, 0.9))
	waitFailed(t, admin, sub.ID, 2)
	for _, rep := range replicas {
		rep.Proc.Stop(10 * time.Second)
	}
	for _, rep := range replicas {
		if err := rep.Proc.Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	rcv.up()
	got = waitEvents(t, rcv, 9, 60*time.Second)
	if strings.Join(got[7:], "|") != "channel.moved promote v2|version.published publish v4" {
		t.Errorf("events after the outage: %q", got[7:])
	}
	ds, err := admin.Deliveries(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != wire.DeliveryDelivered {
			t.Errorf("delivery %s (%s) is %s", d.ID, d.Type, d.Status)
		}
	}
	t.Logf("the outage's deliveries: %d and %d attempts", len(ds[0].Attempts), len(ds[1].Attempts))

	// A redelivery from the log sends the same id again: the receiver
	// sees a duplicate it drops.
	before := rcv.copies
	if _, err := admin.Redeliver(ctx, sub.ID, ds[0].ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rcv.mu.Lock()
		n := rcv.copies
		rcv.mu.Unlock()
		if n > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no redelivery within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(rcv.events()) != 9 {
		t.Errorf("a redelivery made a new event: %q", rcv.events())
	}
}

// waitFailed waits until n deliveries have at least two failed attempts.
func waitFailed(t *testing.T, c *regclient.Client, sub string, n int) {
	t.Helper()
	waitDelivery(t, c, sub, func(ds []wire.Delivery) bool {
		failing := 0
		for _, d := range ds {
			if d.Status == wire.DeliveryPending && len(d.Attempts) >= 2 {
				failing++
			}
		}
		return failing >= n
	})
}

// TestDeliveriesKeepOffDeniedAddresses runs the registry binary: by
// default a subscription may not name a cloud metadata address but may
// name loopback; with loopback in -webhook-deny, a subscription to a name
// that resolves there is kept, and its deliveries fail naming the deny
// list without ever reaching the receiver.
func TestDeliveriesKeepOffDeniedAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs registry binaries")
	}
	ctx := context.Background()
	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver{t: t, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), seen: map[string]string{}}
	rcv.up()
	t.Cleanup(rcv.down)

	byDefault := registrytest.StartBinary(t, registrytest.Binary{})
	admin := &regclient.Client{BaseURL: byDefault.URL, Token: registrytest.AdminToken}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest"} {
		if _, err := admin.Subscribe(ctx, wire.NewSubscription{URL: u}); !regclient.IsStatus(err, 400) {
			t.Errorf("subscribing %s by default: %v, want 400", u, err)
		}
	}
	if _, err := admin.Subscribe(ctx, wire.NewSubscription{URL: "http://" + rcv.addr + "/hook"}); err != nil {
		t.Errorf("subscribing a loopback receiver by default: %v", err)
	}

	strict := registrytest.StartBinary(t, registrytest.Binary{Args: []string{"-webhook-deny", "127.0.0.0/8,::1/128",
		"-webhook-tick", "200ms", "-webhook-retry-schedule", "200ms"}})
	admin = &regclient.Client{BaseURL: strict.URL, Token: registrytest.AdminToken}
	if _, err := admin.Subscribe(ctx, wire.NewSubscription{URL: "http://" + rcv.addr + "/hook"}); !regclient.IsStatus(err, 400) {
		t.Errorf("subscribing %s with loopback denied: %v, want 400", rcv.addr, err)
	}
	sub, err := admin.Subscribe(ctx, wire.NewSubscription{URL: fmt.Sprintf("http://localhost:%d/hook", ports[0])})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the dispatcher's cursor exists
	registrytest.Publish(t, &regclient.Client{BaseURL: strict.URL, Token: registrytest.PublisherToken}, "m", "v1", testenv.TinyArtifact(t, 1, 0.9))
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err := admin.Deliveries(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Status == wire.DeliveryFailed {
			for _, a := range ds[0].Attempts {
				if !strings.Contains(a.Error, "denied to webhook deliveries") {
					t.Errorf("attempt %+v does not name the deny list", a)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v: want one, failed", ds)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.copies != 0 {
		t.Errorf("the receiver got %d deliveries through the deny list", rcv.copies)
	}
}

// scripted is a webhook endpoint that answers from a script, then 204.
type scripted struct {
	mu      sync.Mutex
	answers []func(http.ResponseWriter)
	got     []time.Time // when each delivery arrived
	types   []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p struct{ Type string }
	_ = json.Unmarshal(body, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got, s.types = append(s.got, time.Now()), append(s.types, p.Type+" "+req.Header.Get("webhook-id"))
	if len(s.answers) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	answer := s.answers[0]
	s.answers = s.answers[1:]
	answer(w)
}

func (s *scripted) arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.got...)
}

// TestEndpointEtiquette runs the registry binary against endpoints that
// answer as the Standard Webhooks specification's status handling
// describes: a Retry-After holds the next attempt back although the
// schedule says 200 ms; a 410 Gone fails the delivery and disables the
// subscription, which then gets no events and refuses a redelivery until
// an admin enables it; another subscription is not affected.
func TestEndpointEtiquette(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a registry binary")
	}
	ctx := context.Background()
	admin, publisher := fastRetries(t)
	gone := &scripted{answers: []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
		},
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusGone) },
	}}
	healthy := &scripted{}
	var subs []wire.Subscription
	for _, h := range []http.Handler{gone, healthy} {
		subs = append(subs, subscribe(t, admin, h))
	}
	time.Sleep(500 * time.Millisecond) // the dispatcher's cursor exists
	registrytest.Publish(t, publisher, "m", "v1", testenv.TinyArtifact(t, 1, 0.9))

	ds := waitDelivery(t, admin, subs[0].ID, func(ds []wire.Delivery) bool {
		return len(ds) == 1 && ds[0].Status == wire.DeliveryFailed
	})
	as := ds[0].Attempts
	if len(as) != 2 || as[0].StatusCode != 503 || as[0].RetryAfter != 2 || as[1].StatusCode != 410 {
		t.Fatalf("attempts %+v: want a 503 with Retry-After 2, then the 410", as)
	}
	if got := gone.arrivals(); len(got) != 2 || got[1].Sub(got[0]) < 1900*time.Millisecond {
		t.Errorf("the retry after a Retry-After of 2 s came %v after the first attempt", got[1].Sub(got[0]))
	}
	listed, err := admin.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range listed {
		if disabled := !s.DisabledAt.IsZero(); disabled != (s.ID == subs[0].ID) || disabled && !strings.Contains(s.DisabledReason, "410") {
			t.Errorf("subscription %s: disabled at %v (%q); only the one answered 410 should be", s.ID, s.DisabledAt, s.DisabledReason)
		}
	}
	if _, err := admin.Redeliver(ctx, subs[0].ID, ds[0].ID); !regclient.IsStatus(err, http.StatusConflict) {
		t.Errorf("redelivering to a disabled subscription: %v, want 409", err)
	}

	// While disabled, an event reaches the other subscription only.
	registrytest.Publish(t, publisher, "m", "v2", testenv.TinyArtifact(t, 2, 0.9))
	waitDelivery(t, admin, subs[1].ID, func(ds []wire.Delivery) bool {
		return len(ds) == 2 && ds[0].Status == wire.DeliveryDelivered && ds[1].Status == wire.DeliveryDelivered
	})
	time.Sleep(500 * time.Millisecond) // five dispatcher ticks more
	if ds, err := admin.Deliveries(ctx, subs[0].ID); err != nil || len(ds) != 1 {
		t.Errorf("the disabled subscription has %d deliveries (%v), want only the first", len(ds), err)
	}

	// Enabled again, it gets the events from then on.
	s, err := admin.EnableSubscription(ctx, subs[0].ID)
	if err != nil || !s.DisabledAt.IsZero() || s.Secret != "" {
		t.Fatalf("enable: %+v, %v", s, err)
	}
	registrytest.Publish(t, publisher, "m", "v3", testenv.TinyArtifact(t, 3, 0.9))
	waitDelivery(t, admin, subs[0].ID, func(ds []wire.Delivery) bool {
		return len(ds) == 2 && ds[0].Status == wire.DeliveryDelivered
	})
	if n := len(gone.arrivals()); n != 3 {
		t.Errorf("the re-enabled endpoint got %d requests, want 3 (two for v1, one for v3)", n)
	}
	entries, err := admin.Audit(ctx, url.Values{"action": {"webhook_enable"}})
	if err != nil || len(entries) != 1 {
		t.Errorf("audit entries for webhook_enable: %+v (%v)", entries, err)
	}
}

// fastRetries starts the registry binary with a 100 ms webhook tick and
// 200 ms retries, and returns an admin's and a publisher's client.
func fastRetries(t *testing.T) (admin, publisher *regclient.Client) {
	reg := registrytest.StartBinary(t, registrytest.Binary{Args: []string{"-webhook-tick", "100ms", "-webhook-retry-schedule", "200ms,200ms,200ms"}})
	return &regclient.Client{BaseURL: reg.URL, Token: registrytest.AdminToken},
		&regclient.Client{BaseURL: reg.URL, Token: registrytest.PublisherToken}
}

// subscribe serves h on a loopback port for the test and subscribes it.
func subscribe(t *testing.T, admin *regclient.Client, h http.Handler) wire.Subscription {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s, err := admin.Subscribe(context.Background(), wire.NewSubscription{URL: "http://" + ln.Addr().String() + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitDelivery polls a subscription's deliveries until done holds.
func waitDelivery(t *testing.T, c *regclient.Client, sub string, done func([]wire.Delivery) bool) []wire.Delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := c.Deliveries(context.Background(), sub)
		if err == nil && done(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s within 30s: %+v (%v)", sub, ds, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOverloadedEndpointIsThrottled: after a 429 with Retry-After 2, the
// endpoint's other deliveries wait too, though their schedule says
// 200 ms; then all arrive.
func TestOverloadedEndpointIsThrottled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a registry binary")
	}
	admin, publisher := fastRetries(t)
	busy := &scripted{answers: []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		},
	}}
	sub := subscribe(t, admin, busy)
	time.Sleep(500 * time.Millisecond) // the dispatcher's cursor exists
	registrytest.Publish(t, publisher, "m", "v1", testenv.TinyArtifact(t, 1, 0.9))
	for deadline := time.Now().Add(30 * time.Second); len(busy.arrivals()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no delivery within 30s")
		}
	}
	registrytest.Publish(t, publisher, "m", "v2", testenv.TinyArtifact(t, 2, 0.9))
	registrytest.Publish(t, publisher, "m", "v3", testenv.TinyArtifact(t, 3, 0.9))
	waitDelivery(t, admin, sub.ID, func(ds []wire.Delivery) bool {
		for _, d := range ds {
			if d.Status != wire.DeliveryDelivered {
				return false
			}
		}
		return len(ds) == 3
	})
	got := busy.arrivals()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4 (v1 twice, v2, v3)", len(got))
	}
	for i, at := range got[1:] {
		if gap := at.Sub(got[0]); gap < 1900*time.Millisecond {
			t.Errorf("request %d came %v after the 429 with Retry-After 2", i+2, gap)
		}
	}
}

// signed records each delivery's signature headers and body, and answers
// 204.
type signed struct {
	mu  sync.Mutex
	got []signedDelivery
}

type signedDelivery struct {
	header http.Header
	body   []byte
}

func (s *signed) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	s.mu.Lock()
	s.got = append(s.got, signedDelivery{req.Header.Clone(), body})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// wait returns the n-th delivery (from 1), waiting for it.
func (s *signed) wait(t *testing.T, n int) signedDelivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		if len(s.got) >= n {
			d := s.got[n-1]
			s.mu.Unlock()
			return d
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no delivery %d within 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSecretRotation: after a rotation, deliveries carry the new secret's
// signature and, during the grace asked for, the old one's, so a receiver
// with either verifies them; with no grace the old secret stops at once.
// Secrets are never listed, and each rotation is audited.
func TestSecretRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a registry binary")
	}
	ctx := context.Background()
	admin, publisher := fastRetries(t)
	endpoint := &signed{}
	sub := subscribe(t, admin, endpoint)
	first := sub.Secret
	time.Sleep(500 * time.Millisecond) // the dispatcher's cursor exists
	registrytest.Publish(t, publisher, "m", "v1", testenv.TinyArtifact(t, 1, 0.9))
	if d := endpoint.wait(t, 1); verify(first, d.header, d.body) != nil {
		t.Fatalf("the first delivery does not verify with the subscription's secret: %v", d.header)
	}

	hour := time.Hour
	rotated, err := admin.RotateSubscriptionSecret(ctx, sub.ID, &hour)
	if err != nil {
		t.Fatal(err)
	}
	second := rotated.Secret
	if !strings.HasPrefix(second, "whsec_") || second == first || rotated.PreviousSecret != "" ||
		rotated.PreviousSecretExpiresAt.Sub(rotated.SecretRotatedAt) != time.Hour {
		t.Fatalf("rotated: %+v", rotated)
	}
	registrytest.Publish(t, publisher, "m", "v2", testenv.TinyArtifact(t, 2, 0.9))
	d := endpoint.wait(t, 2)
	if n := len(strings.Fields(d.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("during the grace, %d signatures; want the new secret's and the old one's", n)
	}
	for name, secret := range map[string]string{"new": second, "old": first} {
		if err := verify(secret, d.header, d.body); err != nil {
			t.Errorf("during the grace, the %s secret: %v", name, err)
		}
	}

	none := time.Duration(0)
	rotated, err = admin.RotateSubscriptionSecret(ctx, sub.ID, &none)
	if err != nil || !rotated.PreviousSecretExpiresAt.IsZero() {
		t.Fatalf("rotate with no grace: %+v, %v", rotated, err)
	}
	registrytest.Publish(t, publisher, "m", "v3", testenv.TinyArtifact(t, 3, 0.9))
	d = endpoint.wait(t, 3)
	if err := verify(rotated.Secret, d.header, d.body); err != nil {
		t.Errorf("after a rotation with no grace, the new secret: %v", err)
	}
	for name, secret := range map[string]string{"first": first, "second": second} {
		if verify(secret, d.header, d.body) == nil {
			t.Errorf("after a rotation with no grace, the %s secret still verifies", name)
		}
	}

	listed, err := admin.Subscriptions(ctx)
	if err != nil || len(listed) != 1 || listed[0].Secret != "" || listed[0].PreviousSecret != "" || listed[0].SecretRotatedAt.IsZero() {
		t.Errorf("listed: %+v (%v)", listed, err)
	}
	for _, grace := range []string{`"-1s"`, `"169h"`, `"soon"`} {
		req, _ := http.NewRequest(http.MethodPost, admin.BaseURL+"/v1/admin/webhooks/"+sub.ID+"/rotate-secret", strings.NewReader(`{"grace":`+grace+`}`))
		req.Header.Set("Authorization", "Bearer "+admin.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("grace %s: %d, want 400", grace, resp.StatusCode)
		}
	}
	if _, err := admin.RotateSubscriptionSecret(ctx, "wh_0000000000000000", nil); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Errorf("rotating an unknown subscription: %v, want 404", err)
	}
	entries, err := admin.Audit(ctx, url.Values{"action": {"webhook_rotate_secret"}})
	if err != nil || len(entries) != 2 || strings.Contains(fmt.Sprint(entries), "whsec_") {
		t.Errorf("audit entries for webhook_rotate_secret: %+v (%v)", entries, err)
	}
}
