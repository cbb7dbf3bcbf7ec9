package edge

import (
	"encoding/json"
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
