package registry_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/rollout"
	"github.com/sentimentpro/sentiment/store/dir"
	"github.com/sentimentpro/sentiment/webhook"
)

// FuzzAPI sends arbitrary names and JSON bodies to the routes that parse
// them (create version, promote, rollback, resolve) as an admin: the API
// must answer every one with a status below 500 and, for errors, a JSON
// body with an "error" field, and never panic.
func FuzzAPI(f *testing.F) {
	st, err := dir.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	reg, err := registry.New(registry.Config{Store: st, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	tokens, _ := registry.ParseTokens("admin:fuzz:fuzz-admin-token-0123456789")
	api := registry.NewAPI(reg, tokens, quiet)
	rollouts, err := rollout.New(rollout.Config{Registry: reg, Store: st, ID: "fuzz", Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	hooks, err := webhook.New(webhook.Config{Registry: reg, Store: st, ID: "fuzz", Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	admin.Mount(api, admin.Config{Rollouts: rollouts, Webhooks: hooks})

	f.Add(uint8(0), "m", "v1", []byte(`{"digest":"sha256:00","description":"x"}`))
	f.Add(uint8(1), "m", "production", []byte(`{"version":"v1","regions":["eu-west"],"reason":"r"}`))
	f.Add(uint8(2), "../../etc", "..", []byte(`{"version":"v1","expect_revision":-1}`))
	f.Add(uint8(3), "m", "production", []byte(`{"version":`))
	f.Add(uint8(0), "m\x00", "v1", []byte(`{"digest":"sha256:`+string(bytes.Repeat([]byte("f"), 64))+`","labels":{"a":"b"}}`))
	f.Add(uint8(4), "m", "production", []byte(`{"version":"v1","regions":["eu-west"],"steps":[5,100],"interval":"1s","thresholds":{"max_psi":-1}}`))
	f.Add(uint8(4), "m", "production", []byte(`{"version":"v1","regions":["eu-west"],"interval":12}`))
	f.Add(uint8(5), "m", "production", []byte(`{"reason":"x"}`))
	f.Add(uint8(6), "m", "v1", []byte(`{"labels":{"a":null,"b":"c"},"description":"d"}`))
	f.Add(uint8(7), "m", "x", []byte(`{"url":"http://127.0.0.1:1/h","events":["channel.moved"],"models":["m"]}`))
	f.Add(uint8(8), "wh_00", "msg_00", []byte(`{}`))
	f.Fuzz(func(t *testing.T, route uint8, name, second string, body []byte) {
		n, s := url.PathEscape(name), url.PathEscape(second)
		var method, path string
		switch route % 9 {
		case 0:
			method, path = http.MethodPut, "/v1/models/"+n+"/versions/"+s
		case 1:
			method, path = http.MethodPost, "/v1/admin/models/"+n+"/channels/"+s+"/promote"
		case 2:
			method, path = http.MethodPost, "/v1/admin/models/"+n+"/channels/"+s+"/rollback"
		case 3:
			method, path = http.MethodGet, "/v1/models/"+n+"/channels/"+s+"/resolve?index=1&wait=1ms"
		case 4:
			method, path = http.MethodPost, "/v1/admin/models/"+n+"/channels/"+s+"/rollout"
		case 5:
			method, path = http.MethodPost, "/v1/admin/models/"+n+"/channels/"+s+"/rollout/abort"
		case 6:
			method, path = http.MethodPatch, "/v1/models/"+n+"/versions/"+s
		case 7:
			method, path = http.MethodPost, "/v1/admin/webhooks"
		case 8:
			method, path = http.MethodPost, "/v1/admin/webhooks/"+n+"/deliveries/"+s+"/redeliver"
		}
		req, err := http.NewRequest(method, "http://registry"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer fuzz-admin-token-0123456789")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct{ Error string }
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: %d without a JSON error: %q", method, path, rec.Code, rec.Body)
			}
		}
	})
}
