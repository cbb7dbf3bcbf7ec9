package edge

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHandler measures the whole /v1/predict handler (middleware,
// JSON, model, response) on SST-2 dev sentences, without the network.
func BenchmarkHandler(b *testing.B) {
	var bodies [][]byte
	if f, err := os.Open("../../shared/data/sst2/dev.tsv"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			text, _, _ := strings.Cut(sc.Text(), "\t")
			bodies = append(bodies, []byte(`{"text":"`+strings.ReplaceAll(text, `"`, `\"`)+`"}`))
		}
		f.Close()
		bodies = bodies[1:]
	} else {
		bodies = [][]byte{[]byte(`{"text":"a wonderful , moving film"}`)}
	}
	for _, tc := range []struct {
		name   string
		rate   float64
		shadow float64
	}{{"ratelimit-off", 0, 0}, {"ratelimit-on", 1e12, 0}, {"shadow-10%", 1e12, 0.1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := NewServer(Config{Region: "eu-west", Logger: quiet, RatePerMinute: tc.rate})
			defer srv.Close()
			srv.Swap(defaultServing(b))
			if tc.shadow > 0 {
				candidate := defaultServing(b)
				candidate.Version = "v2"
				if err := srv.SetCandidate(&Candidate{Serving: candidate, ShadowRate: tc.shadow}); err != nil {
					b.Fatal(err)
				}
			}
			postLoop(b, srv.Handler(), "/v1/predict", bodies)
		})
	}
}

// BenchmarkInfer measures the Open Inference Protocol's infer handler
// (one text per request, JSON), without the network.
func BenchmarkInfer(b *testing.B) {
	srv := NewServer(Config{Region: "eu-west", Logger: quiet})
	srv.Swap(defaultServing(b))
	body := []byte(`{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a wonderful , moving film that never lets go"]}]}`)
	postLoop(b, srv.Handler(), "/v2/models/sentiment/infer", [][]byte{body})
}

// postLoop posts the bodies in turn to path, b.N times, through h.
func postLoop(b *testing.B, h fasthttp.RequestHandler, path string, bodies [][]byte) {
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI(path)
		ctx.Request.SetBody(bodies[i%len(bodies)])
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
