package registry_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/model/bundle/bundletest"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry"
)

func TestPublishPromoteResolveRollback(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i, v := range versions(4) {
		publish(t, h.pub, "sst2", v, artifact(t, uint64(i+1), 0.80+float64(i)*0.01))
	}

	// Global promote, then a per-region override.
	mustPromote(t, h.admin, "sst2", "production", "v1")
	mustPromote(t, h.admin, "sst2", "production", "v2")
	ch := mustPromote(t, h.admin, "sst2", "production", "v3", "eu-west")
	if ch.Global != "v2" || ch.Regions["eu-west"] != "v3" || ch.Revision != 3 {
		t.Fatalf("channel after promotes: %+v", ch)
	}
	if got := resolveVersion(t, h.reader, "sst2", "production", "eu-west"); got != "v3" {
		t.Fatalf("eu-west resolves to %s, want v3", got)
	}
	if got := resolveVersion(t, h.reader, "sst2", "production", "us-east"); got != "v2" {
		t.Fatalf("us-east resolves to %s, want v2", got)
	}
	res, err := h.reader.Resolve(ctx, "sst2", "production", "eu-west", 0, 0)
	if err != nil || res.Version.Digest == "" || res.Version.Artifact.Metrics == nil || res.Revision != 3 {
		t.Fatalf("resolution %+v, %v", res, err)
	}

	// Regional rollback returns eu-west to what it served before (v2).
	ch, err = h.admin.Rollback(ctx, "sst2", "production", wire.MoveRequest{Regions: []string{"eu-west"}, Reason: "latency regression"})
	if err != nil || ch.Regions["eu-west"] != "v2" {
		t.Fatalf("regional rollback: %+v, %v", ch, err)
	}
	// Global rollback returns everything to the previous global target.
	ch, err = h.admin.Rollback(ctx, "sst2", "production", wire.MoveRequest{})
	if err != nil || ch.Global != "v1" {
		t.Fatalf("global rollback: %+v, %v", ch, err)
	}
	if got := resolveVersion(t, h.reader, "sst2", "production", "us-east"); got != "v1" {
		t.Fatalf("after rollback us-east resolves to %s", got)
	}
	// Rollback to a named version.
	ch, err = h.admin.Rollback(ctx, "sst2", "production", wire.MoveRequest{Version: "v4"})
	if err != nil || ch.Global != "v4" {
		t.Fatalf("rollback to v4: %+v, %v", ch, err)
	}

	hist, err := h.reader.History(ctx, "sst2", "production", 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range hist {
		actions = append(actions, fmt.Sprintf("%d:%s:%s", c.Revision, c.Change.Action, c.Change.After[wire.GlobalScope]))
	}
	want := []string{"6:rollback:v4", "5:rollback:v1", "4:rollback:v2", "3:promote:v2", "2:promote:v2", "1:promote:v1"}
	if !slices.Equal(actions, want) {
		t.Fatalf("history %v, want %v", actions, want)
	}
	if hist[2].Change.Before["eu-west"] != "v3" || hist[2].Change.Reason != "latency regression" || hist[2].Change.Actor != "alice" {
		t.Fatalf("regional rollback change %+v", hist[2].Change)
	}

	// Versions and models are listed and paged.
	models, _, err := h.reg.ListModels(ctx, "", 0)
	if err != nil || !slices.Equal(models, []string{"sst2"}) {
		t.Fatalf("models %v, %v", models, err)
	}
	page, next, err := h.reg.ListVersions(ctx, "sst2", "", 3)
	if err != nil || len(page) != 3 || next != "v3" {
		t.Fatalf("first page %d versions, next %q, %v", len(page), next, err)
	}
	page, next, err = h.reg.ListVersions(ctx, "sst2", next, 3)
	if err != nil || len(page) != 1 || page[0].Version != "v4" || next != "" {
		t.Fatalf("second page %+v, next %q, %v", page, next, err)
	}
}

func TestPublishIsImmutableAndIdempotent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, b := artifact(t, 1, 0.8), artifact(t, 2, 0.8)
	v1 := publish(t, h.pub, "m", "v1", a)
	if v1.Digest != model.Digest(a) || v1.Size != int64(len(a)) || v1.Publisher != "ml-team" || v1.Artifact.Name != "test" {
		t.Fatalf("version %+v", v1)
	}
	// Same bytes again: 200, same version.
	again := publish(t, h.pub, "m", "v1", a)
	if !again.CreatedAt.Equal(v1.CreatedAt) {
		t.Fatal("re-publishing the same bytes created a new version")
	}
	// Different bytes under the same version: 409.
	if _, err := h.pub.PutBlob(ctx, model.Digest(b), bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	_, err := h.pub.CreateVersion(ctx, "m", "v1", wire.NewVersion{Digest: model.Digest(b)})
	if !regclient.IsStatus(err, http.StatusConflict) {
		t.Fatalf("re-publish with other bytes: %v, want 409", err)
	}
	// Download: ETag, Range, If-None-Match.
	get := func(hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/models/m/versions/v1/artifact", nil)
		req.Header.Set("Authorization", "Bearer "+readerToken)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get(nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, a) || resp.Header.Get("ETag") != `"`+v1.Digest+`"` {
		t.Fatalf("download: %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}
	// A shared cache must not keep what needed a token (RFC 9111 §3.5).
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "private") || strings.Contains(cc, "public") {
		t.Errorf("artifact Cache-Control %q: want private", cc)
	}
	resp = get(map[string]string{"Range": "bytes=4-11"})
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(body, a[4:12]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 4-11/%d", len(a)) {
		t.Fatalf("range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp = get(map[string]string{"If-None-Match": `"` + v1.Digest + `"`})
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp = get(map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(a)+10)})
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d, want 416", resp.StatusCode)
	}
}

func TestConcurrentPromotesLoseNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	vs := versions(5)
	for i, v := range vs {
		publish(t, h.pub, "m", v, artifact(t, uint64(i+1), 0.8))
	}
	const n = 50
	type ack struct {
		rev     uint64
		version string
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := vs[i%len(vs)]
			c, err := h.admin.Promote(ctx, "m", "production", wire.MoveRequest{Version: v, Reason: fmt.Sprintf("move %d", i)})
			if err != nil {
				t.Errorf("promote %d: %v", i, err)
				return
			}
			mu.Lock()
			acks = append(acks, ack{c.Revision, v})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(acks) != n {
		t.Fatalf("%d of %d promotes acknowledged", len(acks), n)
	}
	slices.SortFunc(acks, func(a, b ack) int { return int(a.rev) - int(b.rev) })
	hist, err := h.reader.History(ctx, "m", "production", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n {
		t.Fatalf("history has %d revisions, want %d", len(hist), n)
	}
	for i, a := range acks {
		c := hist[n-1-i] // history is newest first
		if c.Revision != a.rev || c.Global != a.version || a.rev != uint64(i+1) {
			t.Fatalf("acknowledged move %d (rev %d -> %s) vs history rev %d -> %s", i, a.rev, a.version, c.Revision, c.Global)
		}
	}
	cur, err := h.reader.GetChannel(ctx, "m", "production", 0, 0)
	if err != nil || cur.Global != acks[n-1].version || cur.Revision != n {
		t.Fatalf("final pointer %+v, last acknowledged %+v", cur, acks[n-1])
	}
	entries, err := h.admin.Audit(ctx, url.Values{"model": {"m"}, "action": {"promote"}, "limit": {"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d promote audit entries, want %d", len(entries), n)
	}
	seen := map[uint64]bool{}
	for _, e := range entries {
		if e.Result != "ok" || seen[e.Revision] {
			t.Fatalf("audit entry %+v (duplicate revision or not ok)", e)
		}
		seen[e.Revision] = true
	}
	t.Logf("%d concurrent promotes: %d acknowledged, %d history revisions, %d audit entries", n, len(acks), len(hist), len(entries))
}

func TestExpectRevisionMakesStaleWritersConflict(t *testing.T) {
	h := newHarness(t)
	publish(t, h.pub, "m", "v1", artifact(t, 1, 0.8))
	publish(t, h.pub, "m", "v2", artifact(t, 2, 0.8))
	ch := mustPromote(t, h.admin, "m", "staging", "v1")
	stale := ch.Revision
	mustPromote(t, h.admin, "m", "staging", "v2")
	_, err := h.admin.Promote(context.Background(), "m", "staging", wire.MoveRequest{Version: "v1", ExpectRevision: &stale})
	if !regclient.IsStatus(err, http.StatusConflict) {
		t.Fatalf("stale conditional promote: %v, want 409", err)
	}
}

func TestReplicasWakeEachOthersWatchers(t *testing.T) {
	srv := sharedS3(t)
	bucket := testenv.NewBucket(t, srv, "replicas")
	a := newReplica(t, srv, bucket, registry.Config{})
	b := newReplica(t, srv, bucket, registry.Config{})
	publish(t, a.pub, "m", "v1", artifact(t, 1, 0.8))
	publish(t, a.pub, "m", "v2", artifact(t, 2, 0.8))
	first := mustPromote(t, a.admin, "m", "production", "v1")

	type result struct {
		res wire.Resolution
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := b.reader.Resolve(context.Background(), "m", "production", "eu-west", first.Revision, 20*time.Second)
		done <- result{res, time.Now(), err}
	}()
	time.Sleep(300 * time.Millisecond) // the watcher is now blocked on replica b
	moved := mustPromote(t, a.admin, "m", "production", "v2")
	acked := time.Now()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	delay := r.at.Sub(acked)
	t.Logf("watcher on replica b saw the promote through replica a %v after it was acknowledged", delay.Round(time.Millisecond))
	if r.res.Version.Version != "v2" || r.res.Revision != moved.Revision {
		t.Fatalf("watcher got %+v", r.res)
	}
	if delay > time.Second {
		t.Fatalf("watcher woke %v after the promote, want <= 1s", delay)
	}
	// A blocking query with nothing new returns after its wait with the
	// same revision.
	start := time.Now()
	res, err := b.reader.Resolve(context.Background(), "m", "production", "", moved.Revision, 300*time.Millisecond)
	if err != nil || res.Revision != moved.Revision || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle blocking query: %+v %v after %v", res, err, time.Since(start))
	}
}

func TestDeleteVersion(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	publish(t, h.pub, "m", "v1", artifact(t, 1, 0.8))
	publish(t, h.pub, "m", "v2", artifact(t, 2, 0.8))
	mustPromote(t, h.admin, "m", "production", "v1")
	del := func(v string) error {
		return h.admin.Raw(ctx, http.MethodDelete, "/v1/models/m/versions/"+v, nil, nil)
	}
	if err := del("v1"); !regclient.IsStatus(err, http.StatusConflict) {
		t.Fatalf("deleting a served version: %v, want 409", err)
	}
	if err := del("v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reader.GetVersion(ctx, "m", "v2"); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("deleted version: %v, want 404", err)
	}
	// The name is a tombstone: not with other bytes, not with the same.
	for _, seed := range []uint64{3, 2} {
		data := artifact(t, seed, 0.8)
		_, err := h.pub.Publish(ctx, "m", "v2", bytes.NewReader(data), int64(len(data)), wire.NewVersion{})
		if !regclient.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "never reused") {
			t.Fatalf("republishing deleted v2: %v, want 409", err)
		}
	}
}

// TestRollbackServesTheBytesItNames: channel revisions record their
// targets' digests, and a rollback to a revision whose version name now
// holds other bytes (data written before tombstones existed, forged here
// in the bucket) is refused rather than served.
func TestRollbackServesTheBytesItNames(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	v1 := publish(t, h.pub, "m", "v1", artifact(t, 1, 0.8))
	publish(t, h.pub, "m", "v2", artifact(t, 2, 0.8))
	if ch := mustPromote(t, h.admin, "m", "staging", "v1"); ch.Digests["v1"] != v1.Digest {
		t.Fatalf("revision records digests %v, want v1 = %s", ch.Digests, v1.Digest)
	}
	mustPromote(t, h.admin, "m", "staging", "v2")
	other := publish(t, h.pub, "m", "v3", artifact(t, 3, 0.8))
	forged := v1
	forged.Digest, forged.Size = other.Digest, other.Size
	data, _ := json.Marshal(forged)
	if err := h.store.Delete(ctx, "models/m/versions/v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Put(ctx, "models/m/versions/v1", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	_, err := h.admin.Rollback(ctx, "m", "staging", wire.MoveRequest{})
	if !regclient.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), v1.Digest) {
		t.Fatalf("rollback to a name that holds other bytes: %v, want 409 naming %s", err, v1.Digest)
	}
}

func TestSignatures(t *testing.T) {
	srv := sharedS3(t)
	pub, priv, _ := model.GenerateKey()
	_, otherPriv, _ := model.GenerateKey()
	h := newReplica(t, srv, testenv.NewBucket(t, srv, "signed"), registry.Config{TrustedKeys: []ed25519.PublicKey{pub}, RequireSignatures: true})
	ctx := context.Background()
	data := artifact(t, 1, 0.8)
	digest := model.Digest(data)
	if _, err := h.pub.PutBlob(ctx, digest, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	_, err := h.pub.CreateVersion(ctx, "m", "v1", wire.NewVersion{Digest: digest})
	if !regclient.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("unsigned: %v, want 422", err)
	}
	bad, _ := model.Sign(otherPriv, digest)
	_, err = h.pub.CreateVersion(ctx, "m", "v1", wire.NewVersion{Digest: digest, Signature: &bad})
	if !regclient.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("signed by an untrusted key: %v, want 422", err)
	}
	good, _ := model.Sign(priv, digest)
	v, err := h.pub.CreateVersion(ctx, "m", "v1", wire.NewVersion{Digest: digest, Signature: &good})
	if err != nil || v.SignedBy != model.KeyID(pub) {
		t.Fatalf("signed: %+v, %v", v, err)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	data := artifact(t, 1, 0.8)
	digest := model.Digest(data)
	publish(t, h.pub, "m", "v1", data)
	raw := func(method, path, token, contentType string, body io.Reader) (int, string) {
		req, _ := http.NewRequest(method, h.url+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"error"`) && resp.StatusCode >= 400 {
			t.Errorf("%s %s: %d body %q is not a JSON error", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, string(b)
	}
	otherDigest := model.Digest([]byte("something else"))
	cases := []struct {
		method, path, token, ct string
		body                    string
		want                    int
		contains                string
	}{
		{"GET", "/v1/models/nope/versions/v1", readerToken, "", "", 404, "not found"},
		{"GET", "/v1/models/m/versions/v9", readerToken, "", "", 404, "not found"},
		{"GET", "/v1/models/nope/versions", readerToken, "", "", 404, "not found"},
		{"GET", "/v1/models/Bad..Name/versions", readerToken, "", "", 400, "[a-z0-9._-]"},
		{"GET", "/v1/models/" + strings.Repeat("a", 65) + "/versions", readerToken, "", "", 400, "1-64"},
		{"GET", "/v1/models/m/versions/..%2Fsecrets", readerToken, "", "", 400, "version"},
		{"GET", "/v1/models/m/channels/production", readerToken, "", "", 404, "not found"},
		{"GET", "/v1/models/m/channels/production/resolve?index=x", readerToken, "", "", 400, "index"},
		{"GET", "/v1/models/m/channels/production/resolve?wait=soon&index=1", readerToken, "", "", 400, "wait"},
		{"GET", "/v1/blobs/sha256:zz", readerToken, "", "", 400, "digest"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", "{not json", 400, "invalid JSON"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + digest + `","extra":1}`, 400, "unknown field"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + otherDigest + `","digest":"` + digest + `"}`, 400, `field \"digest\" appears twice`},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + digest + `","labels":{"stage":"a","stage":"b"}}`, 400, `field \"stage\" appears twice`},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + otherDigest + `","DIGEST":"` + digest + `"}`, 400, `field \"DIGEST\" appears twice`},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + otherDigest + `","Labels":{},"labels":{}}`, 400, `field \"labels\" appears twice`},
		// A map's keys are exact, as encoding/json keeps them: two labels.
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + otherDigest + `","labels":{"stage":"a","STAGE":"b"}}`, 400, "not been uploaded"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "text/plain", `{}`, 415, "Content-Type"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/jsonp", `{}`, 415, "Content-Type"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json; charset", `{}`, 415, "Content-Type"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "Application/JSON; Charset=UTF-8", "{not json", 400, "invalid JSON"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"md5:abc"}`, 400, "sha256"},
		{"PUT", "/v1/models/m/versions/v2", publisherToken, "application/json", `{"digest":"` + otherDigest + `"}`, 400, "not been uploaded"},
		{"PUT", "/v1/blobs/" + otherDigest, publisherToken, "", string(data), 400, "digest mismatch"},
		{"PUT", "/v1/blobs/" + model.Digest([]byte("not a model artifact at all")), publisherToken, "", "not a model artifact at all", 422, "neither a model artifact (SAPM) nor an ONNX bundle"},
		{"PUT", "/v1/blobs/" + model.Digest(data[:100]), publisherToken, "", string(data[:100]), 422, "truncated"},
		{"POST", "/v1/admin/models/m/channels/production/promote", adminToken, "application/json", `{}`, 400, "version is required"},
		{"POST", "/v1/admin/models/m/channels/production/promote", adminToken, "application/json", `{"version":"v7"}`, 404, "not found"},
		{"POST", "/v1/admin/models/m/channels/production/promote", adminToken, "application/json", `{"version":"v1","regions":["EU WEST"]}`, 400, "region"},
		{"POST", "/v1/admin/models/m/channels/production/rollback", adminToken, "application/json", `{}`, 404, "not found"},
		{"GET", "/v1/admin/audit?since=yesterday", adminToken, "", "", 400, "RFC 3339"},
		{"GET", "/v1/models/m/versions/", readerToken, "", "", 404, "no route"},
		{"OPTIONS", "/v1/models/m/versions", readerToken, "", "", 405, "no route"},
	}
	for _, tc := range cases {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		code, got := raw(tc.method, tc.path, tc.token, tc.ct, body)
		if code != tc.want || !strings.Contains(got, tc.contains) {
			t.Errorf("%s %s: %d %q, want %d mentioning %q", tc.method, tc.path, code, got, tc.want, tc.contains)
		}
	}
	// Oversized upload: 413, nothing stored.
	small := newReplica(t, sharedS3(t), h.bucket, registry.Config{MaxArtifactBytes: 1000})
	_, err := small.pub.PutBlob(ctx, model.Digest(data), bytes.NewReader(data), int64(len(data)))
	if !regclient.IsStatus(err, http.StatusRequestEntityTooLarge) {
		t.Fatalf("oversized upload: %v, want 413", err)
	}
	_, err = small.pub.PutBlob(ctx, model.Digest(data), io.MultiReader(bytes.NewReader(data)), -1) // no Content-Length
	if !regclient.IsStatus(err, http.StatusRequestEntityTooLarge) {
		t.Fatalf("oversized streamed upload: %v, want 413", err)
	}
}

// TestCutOffUploadLeavesNothing sends half an artifact and hangs up.
func TestCutOffUploadLeavesNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	data := artifact(t, 1, 0.8)
	digest := model.Digest(data)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:len(data)/2])
		pw.CloseWithError(errors.New("client went away"))
	}()
	if _, err := h.pub.PutBlob(ctx, digest, pr, int64(len(data))); err == nil {
		t.Fatal("a cut-off upload succeeded")
	}
	if _, err := h.reg.StatBlob(ctx, digest); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("blob after a cut-off upload: %v, want not found", err)
	}
	// The same publish then goes through.
	publish(t, h.pub, "m", "v1", data)
}

// TestAuditCannotBeBrokenFromOutside: a denied request with a 66,000
// character model name is audited within bounds, an unreadable object in
// the trail is skipped (and counted) instead of failing every query, and
// anonymous denials past the sampler's burst are dropped and counted.
func TestAuditCannotBeBrokenFromOutside(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	resp, err := http.Get(h.url + "/v1/models/" + strings.Repeat("a", 66000) + "/versions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous request: %d, want 401", resp.StatusCode)
	}
	// Two bad objects in the refusals' trail, keyed in the query's range.
	now := time.Now().UTC()
	prefix := "audit-refusals/" + now.Format("2006-01-02") + "/"
	junk := strings.Repeat("x", 70<<10)
	if _, err := h.store.Put(ctx, prefix+fmt.Sprintf("%020d-junk", now.UnixNano()-2), strings.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Put(ctx, prefix+fmt.Sprintf("%020d-notjson", now.UnixNano()-1), strings.NewReader("{"), 1); err != nil {
		t.Fatal(err)
	}
	unreadable := func() uint64 { return metrics.GetOrCreateCounter(`registry_audit_unreadable_total`).Get() }
	before := unreadable()
	entries, err := h.admin.Audit(ctx, url.Values{"action": {"auth_denied"}})
	if err != nil {
		t.Fatalf("audit query after a 66,000-character name and two bad objects: %v", err)
	}
	if len(entries) != 1 || len(entries[0].Model) > 256 || !strings.HasPrefix(entries[0].Model, "aaaa") {
		t.Fatalf("want the denial, with its model name bounded: %d entries %+v", len(entries), entries)
	}
	if got := unreadable() - before; got != 2 {
		t.Fatalf("registry_audit_unreadable_total grew by %d, want 2", got)
	}
	dropped := func() uint64 {
		return metrics.GetOrCreateCounter(`registry_audit_anonymous_denials_dropped_total`).Get()
	}
	droppedBefore := dropped()
	for i := 0; i < 300; i++ {
		resp, err := http.Get(h.url + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := dropped() - droppedBefore; got < 100 {
		t.Fatalf("300 anonymous denials at once: %d dropped, want the ones past the burst of 100", got)
	}
	// A valid token refused by its role is audited at up to one a second
	// (bursts of 20) per principal: a reader cannot flood the trail.
	since := time.Now()
	for i := 0; i < 100; i++ {
		if err := h.reader.Raw(ctx, http.MethodDelete, "/v1/models/m/versions/v1", nil, nil); !regclient.IsStatus(err, http.StatusForbidden) {
			t.Fatalf("a reader deleting: %v, want 403", err)
		}
	}
	byReader, err := h.reg.QueryAudit(ctx, registry.AuditQuery{Action: "auth_denied", Actor: "edge", Since: since, Limit: 1000})
	if err != nil || len(byReader) < 20 || len(byReader) > 30 {
		t.Fatalf("100 refusals of one reader: %d audited (want the burst of 20 and a few more), %v", len(byReader), err)
	}
}

// TestTrustedKeysMeanSignaturesRequired: a registry given trusted keys,
// without RequireSignatures, refuses an unsigned version.
func TestTrustedKeysMeanSignaturesRequired(t *testing.T) {
	srv := sharedS3(t)
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newReplica(t, srv, testenv.NewBucket(t, srv, "keys"), registry.Config{TrustedKeys: []ed25519.PublicKey{pub}})
	data := artifact(t, 1, 0.8)
	_, err = h.pub.Publish(context.Background(), "m", "v1", bytes.NewReader(data), int64(len(data)), wire.NewVersion{})
	if !regclient.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Fatalf("unsigned publish with trusted keys: %v, want 422", err)
	}
}

// TestWatchesAreBounded: a blocking read of a channel that does not exist
// answers 404 at once, and one token's blocking reads past the cap get 429.
func TestWatchesAreBounded(t *testing.T) {
	srv := sharedS3(t)
	h := newReplica(t, srv, testenv.NewBucket(t, srv, "watch"), registry.Config{MaxWatchesPerToken: 2})
	ctx := context.Background()
	start := time.Now()
	if _, err := h.reader.GetChannel(ctx, "m", "made-up", 1, 10*time.Second); !regclient.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("watching a made-up channel: %v, want 404", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the 404 waited %v", took)
	}
	publish(t, h.pub, "m", "v1", artifact(t, 1, 0.8))
	ch := mustPromote(t, h.admin, "m", "production", "v1")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Turned away while a probe below holds a place: try again.
			for {
				_, err := h.reader.GetChannel(wctx, "m", "production", ch.Revision, 30*time.Second)
				if !regclient.IsStatus(err, http.StatusTooManyRequests) {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	untilRefused(t, h.reader, ch.Revision, "a third blocking read for one token")
	// Another token is not affected, and reads with no index never wait.
	if _, err := h.admin.GetChannel(ctx, "m", "production", 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reader.GetChannel(ctx, "m", "production", 0, 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
}

// TestWatchCapIsPerClient: whoever else holds the edges' reader token
// fills only its own address's places; an edge at another address still
// gets its blocking read (#29, finding 9).
func TestWatchCapIsPerClient(t *testing.T) {
	srv := sharedS3(t)
	h := newReplica(t, srv, testenv.NewBucket(t, srv, "watchcap"), registry.Config{MaxWatchesPerClient: 2})
	ctx := context.Background()
	publish(t, h.pub, "m", "v1", artifact(t, 1, 0.8))
	ch := mustPromote(t, h.admin, "m", "production", "v1")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 { // the other holder, from 127.0.0.1, takes its two places
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				h.reader.GetChannel(wctx, "m", "production", ch.Revision, 30*time.Second)
			}
		}()
	}
	untilRefused(t, h.reader, ch.Revision, "a third blocking read from one address")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	edge := &regclient.Client{BaseURL: h.url, Token: readerToken,
		HTTP: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}}
	if _, err := edge.GetChannel(ctx, "m", "production", ch.Revision, 200*time.Millisecond); err != nil {
		t.Errorf("an edge at 127.0.0.2 with the same token, while 127.0.0.1 holds its places: %v", err)
	}
}

// untilRefused probes m's production channel with short blocking reads
// through c until one is refused with 429 (the watches the test started
// have taken every place), failing after 10 s.
func untilRefused(t *testing.T, c *regclient.Client, rev uint64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Short waits: until the test's reads are all waiting, this one is let in.
		_, err := c.GetChannel(context.Background(), "m", "production", rev, 200*time.Millisecond)
		if regclient.IsStatus(err, http.StatusTooManyRequests) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want 429", what, err)
		}
		// Leave the place free for a while: the test's reads retry at once,
		// and must get it before this probe asks again.
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPublishONNXBundle publishes an ONNX bundle as it publishes the
// built-in format, and refuses broken bundles at upload, naming the
// problem: nothing of theirs is stored.
func TestPublishONNXBundle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	v := publish(t, h.pub, "tiny", "v1", bundletest.Pack(t, nil))
	a := v.Artifact
	if a.Format != model.FormatONNX || a.Bundle == nil || !slices.Equal(a.Labels, []string{"negative", "neutral", "positive"}) ||
		a.Bundle.MaxLength != 64 || a.Bundle.Tokenizer != "WordPiece" {
		t.Fatalf("version's artifact: %+v", a)
	}
	got, err := h.reader.GetVersion(ctx, "tiny", "v1")
	if err != nil || got.Artifact.Bundle == nil || got.Artifact.Bundle.Opset != 14 {
		t.Fatalf("stored version: %+v, %v", got, err)
	}

	refused := func(name string, data []byte, wantInMessage string) {
		t.Helper()
		_, err := h.pub.Publish(ctx, "tiny", "bad", bytes.NewReader(data), int64(len(data)), wire.NewVersion{})
		var ae *regclient.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, wantInMessage) {
			t.Errorf("%s: err = %v, want 422 naming %q", name, err, wantInMessage)
		}
		if _, err := h.store.Stat(ctx, "blobs/sha256/"+strings.TrimPrefix(model.Digest(data), "sha256:")); err == nil {
			t.Errorf("%s: the refused bundle was stored", name)
		}
	}
	good := bundletest.Pack(t, nil)
	refused("truncated", good[:len(good)/2], "truncated")
	refused("corrupt model", bundletest.Pack(t, map[string]string{bundle.ModelFile: "\x08\x07garbage"}), "model.onnx")
	refused("labels", bundletest.Pack(t, map[string]string{bundle.ConfigFile: `{"id2label": {"0": "neg", "1": "pos"}, "max_position_embeddings": 64}`}),
		"logits has 3 columns but config.json's id2label names 2 labels")
	refused("no tokenizer", bundletest.Pack(t, map[string]string{bundle.TokenizerFile: ""}), "no tokenizer.json")
	refused("neither format", []byte(strings.Repeat("not a model ", 100)), "neither a model artifact")
}
