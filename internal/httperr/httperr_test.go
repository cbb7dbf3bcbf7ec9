package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAppendJSONStringIsJSON(t *testing.T) {
	f := func(in string) {
		t.Helper()
		b := AppendJSONString(nil, in)
		var out string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%q encoded as %s: not JSON: %v", in, b, err)
		}
		if strings.ContainsRune(string(b), 0x7f) {
			t.Fatalf("%q encoded as %s: raw DEL", in, b)
		}
		if want := strings.ToValidUTF8(in, "\uFFFD"); out != want && !strings.Contains(in, "\xff\xfe") {
			t.Fatalf("%q round-tripped as %q", in, out)
		}
	}
	f("")
	f("plain")
	f(`quote " and backslash \ and slash /`)
	f("control \x00\x01\x1f\n\r\t and DEL \x7f")
	f("invalid \xff utf-8 and \xff\xfe")
	f("unicode: été, 日本, 🙂")
}

func TestFromHidesCauses(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:9000: connection refused (bucket secret-bucket)")
	code, msg := From(fmt.Errorf("cannot read: %w", cause))
	if code != 500 || msg != Internal {
		t.Fatalf("a plain error gave %d %q, want 500 %q", code, msg, Internal)
	}
	code, msg = From(fmt.Errorf("wrapped: %w", Wrap(503, "storage unavailable", cause)))
	if code != 503 || msg != "storage unavailable" {
		t.Fatalf("a wrapped *Error gave %d %q", code, msg)
	}
	if e := Wrap(503, "storage unavailable", cause); !errors.Is(e, cause) || !strings.Contains(e.Error(), "127.0.0.1") {
		t.Fatalf("the cause must stay reachable for the log: %v", e)
	}
}

func TestWriteHTTP(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteHTTP(rec, Wrap(503, "storage unavailable", errors.New("s3 at 127.0.0.1:1 down")), "id-1")
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || body["error"] != "storage unavailable" || body["request_id"] != "id-1" || len(body) != 2 {
		t.Fatalf("got %d %v", rec.Code, body)
	}
	if rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", rec.Header())
	}
}
