package edge

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

// fuzzRoute feeds arbitrary bodies to a route through the real handler:
// never a panic, never a 5xx, always a JSON answer.
func fuzzRoute(f *testing.F, path string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	srv := NewServer(Config{Region: "eu-west", Logger: quiet, MaxBatch: 16})
	srv.Swap(defaultServing(f))
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBody(body)
		h(&ctx)
		code := ctx.Response.StatusCode()
		if code >= 500 {
			t.Fatalf("%s %q: status %d %s", path, body, code, ctx.Response.Body())
		}
		if !json.Valid(ctx.Response.Body()) {
			t.Fatalf("%s %q: answer is not JSON: %q", path, body, ctx.Response.Body())
		}
	})
}

func FuzzPredictJSON(f *testing.F) {
	fuzzRoute(f, "/v1/predict", `{"text":"a great film"}`, `{"text":"x","explain":true}`, `{"text":"\u00e9\ud83d\ude0d"}`, `{}`, `[1]`, `{"text":"<br />not good"}`)
}

func FuzzBatchJSON(f *testing.F) {
	fuzzRoute(f, "/v1/predict/batch", `{"texts":["a","b"]}`, `{"texts":[]}`, `{"texts":[1,{}]}`)
}

func FuzzInferJSON(f *testing.F) {
	fuzzRoute(f, "/v2/models/sentiment/infer",
		`{"id":"1","inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["great","awful"]}]}`,
		`{"inputs":[{"name":"t","shape":[1,2],"datatype":"BYTES","data":[["a","b"]]}],"outputs":[{"name":"score"}]}`,
		`{"inputs":[{"name":"t","shape":[3],"datatype":"BYTES","data":[[[["deep"]]]]}]}`,
		`{"parameters":{},"inputs":[{"name":"t","shape":[0],"datatype":"BYTES","data":[]}]}`)
}

// FuzzInferBinary feeds the binary tensor data extension arbitrary bodies
// and Inference-Header-Content-Length values: never a panic or a 5xx; an
// answer's JSON part is valid JSON.
func FuzzInferBinary(f *testing.F) {
	head := `{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}}],"parameters":{"binary_data_output":true}}`
	f.Add([]byte(head+"\x01\x00\x00\x00a\x01\x00\x00\x00b"), len(head))
	f.Add([]byte(head+"\xff\xff\xff\xff"), len(head))
	f.Add([]byte(head), -5)
	srv := NewServer(Config{Region: "eu-west", Logger: quiet, MaxBatch: 16})
	srv.Swap(defaultServing(f))
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte, jsonLen int) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/sentiment/infer")
		ctx.Request.Header.Set("Inference-Header-Content-Length", strconv.Itoa(jsonLen))
		ctx.Request.SetBody(body)
		h(&ctx)
		if code := ctx.Response.StatusCode(); code >= 500 {
			t.Fatalf("%q (JSON %d): status %d %s", body, jsonLen, code, ctx.Response.Body())
		}
		answer := ctx.Response.Body()
		if n, err := strconv.Atoi(string(ctx.Response.Header.Peek("Inference-Header-Content-Length"))); err == nil {
			if n > len(answer) {
				t.Fatalf("answer's JSON length %d past its %d bytes", n, len(answer))
			}
			answer = answer[:n]
		}
		if !json.Valid(answer) {
			t.Fatalf("%q: answer's JSON is not JSON: %q", body, answer)
		}
	})
}
