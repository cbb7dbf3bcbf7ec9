package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/reviewsmodel"
	"github.com/sentimentpro/sentiment/oippb"
)

// reviewsServing is the example second model, a version of "reviews".
func reviewsServing(t testing.TB, version string) *Serving {
	t.Helper()
	data := reviewsmodel.Artifact()
	m, err := model.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return &Serving{Predictor: m, Name: "reviews", Version: version, Digest: m.Digest(), Source: "registry", Bytes: int64(len(data))}
}

// TestSeveralModelsRouteByName: one edge, two models. /v1/predict answers
// from the first unless "model" names another, OIP and gRPC route by the
// path's or the request's name, and an unknown name is a 404 that lists
// what the edge serves.
func TestSeveralModelsRouteByName(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Models: []string{"sentiment", "reviews"}, Logger: quiet})
	c := startMem(t, srv)
	srv.Swap(defaultServing(t))
	if r := call(t, c, "GET", "/health/ready", ""); r.code != 503 || !strings.Contains(r.body, `model \"reviews\" has no version yet`) {
		t.Fatalf("ready with one of two models: %d %s", r.code, r.body)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"great","model":"reviews"}`); r.code != 503 {
		t.Fatalf("the model not loaded yet: %d %s", r.code, r.body)
	}
	if r := call(t, c, "POST", "/v2/repository/index", ""); !strings.Contains(r.body, `"name":"reviews","version":"","state":"UNAVAILABLE"`) {
		t.Errorf("repository index with one model loaded: %s", r.body)
	}
	srv.Slot("reviews").Swap(reviewsServing(t, "r1"))

	for _, tc := range []struct{ body, model, version string }{
		{`{"text":"a moving, funny film"}`, "sentiment", "v1"},
		{`{"text":"a moving, funny film","model":"sentiment"}`, "sentiment", "v1"},
		{`{"model":"reviews","text":"a moving, funny film"}`, "reviews", "r1"},
	} {
		r := call(t, c, "POST", "/v1/predict", tc.body)
		var out struct{ Model, Version string }
		if err := json.Unmarshal([]byte(r.body), &out); err != nil || r.code != 200 || out.Model != tc.model || out.Version != tc.version {
			t.Errorf("%s: %d %s, want %s/%s", tc.body, r.code, r.body, tc.model, tc.version)
		}
	}
	r := call(t, c, "POST", "/v1/predict/batch", `{"model":"reviews","texts":["dull","fine"]}`)
	if r.code != 200 || !strings.Contains(r.body, `"model":"reviews","version":"r1"`) {
		t.Errorf("batch for reviews: %d %s", r.code, r.body)
	}
	for body, want := range map[string]string{
		`{"text":"hi","model":"toxicity"}`: `model \"toxicity\" not found (this edge serves \"sentiment\", \"reviews\")`,
		`{"text":"hi","model":7}`:          `\"model\" must be a model's name`,
		`{"text":"hi","model":""}`:         `\"model\" must be a model's name`,
	} {
		if r := call(t, c, "POST", "/v1/predict", body); r.code/100 != 4 || !strings.Contains(r.body, want) {
			t.Errorf("%s: %d %s, want a 4xx with %s", body, r.code, r.body, want)
		}
	}

	infer := `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a tedious mess"]}]}`
	if r := call(t, c, "POST", "/v2/models/reviews/infer", infer); r.code != 200 || !strings.Contains(r.body, `"model_name":"reviews","model_version":"r1"`) {
		t.Errorf("OIP infer on reviews: %d %s", r.code, r.body)
	}
	if r := call(t, c, "GET", "/v2/models/reviews", ""); !strings.Contains(r.body, `"name":"reviews","versions":["r1"]`) {
		t.Errorf("OIP metadata of reviews: %s", r.body)
	}
	if r := call(t, c, "GET", "/v2/models/reviews/versions/v1/ready", ""); r.code != 404 {
		t.Errorf("the other model's version under reviews: %d %s", r.code, r.body)
	}
	if r := call(t, c, "GET", "/v2/models/stats", ""); !strings.Contains(r.body, `"name":"sentiment"`) || !strings.Contains(r.body, `"name":"reviews"`) {
		t.Errorf("statistics of every model: %s", r.body)
	}
	if r := call(t, c, "GET", "/health/ready", ""); r.code != 200 || !strings.Contains(r.body, `"models":[{"name":"sentiment","version":"v1"`) ||
		!strings.Contains(r.body, `{"name":"reviews","version":"r1"`) {
		t.Errorf("ready with both: %d %s", r.code, r.body)
	}

	client := oippb.NewGRPCInferenceServiceClient(startGRPC(t, srv))
	req := textRequest("a tedious mess")
	req.ModelName = "reviews"
	resp, err := client.ModelInfer(context.Background(), req)
	if err != nil || resp.ModelName != "reviews" || resp.ModelVersion != "r1" {
		t.Errorf("gRPC infer on reviews: %v %v", resp, err)
	}
	req.ModelName = "toxicity"
	if _, err := client.ModelInfer(context.Background(), req); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC infer on an unknown model: %v", err)
	}
}

// TestACandidateStaysWithItsModel: a rollout candidate of one model
// answers none of the other model's requests.
func TestACandidateStaysWithItsModel(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Models: []string{"sentiment", "reviews"}, Logger: quiet})
	c := startMem(t, srv)
	srv.Swap(defaultServing(t))
	reviews := srv.Slot("reviews")
	reviews.Swap(reviewsServing(t, "r1"))
	if err := reviews.SetCandidate(&Candidate{Serving: reviewsServing(t, "r2"), Percent: 100}); err != nil {
		t.Fatal(err)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"fine"}`); !strings.Contains(r.body, `"model":"sentiment","version":"v1"`) {
		t.Errorf("the default model during the other's rollout: %s", r.body)
	}
	if r := call(t, c, "POST", "/v1/predict", `{"text":"fine","model":"reviews"}`); !strings.Contains(r.body, `"model":"reviews","version":"r2"`) {
		t.Errorf("reviews' candidate at 100 %%: %s", r.body)
	}
	if srv.Candidate() != nil {
		t.Error("the default model has a candidate")
	}
}

// TestMemoryBudget: a version that does not fit beside those held is
// refused with the figures; one that fits is reserved until released.
func TestMemoryBudget(t *testing.T) {
	srv := NewServer(Config{Region: "eu-west", Models: []string{"sentiment", "reviews"}, Logger: quiet, MemoryBudget: 10 << 20})
	defer srv.Close()
	sv := defaultServing(t)
	sv.Bytes = 8 << 20
	srv.Swap(sv)
	_, err := srv.reserve("reviews", "r1", 3<<20)
	if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "reviews/r1 is 3.0 MiB; this edge's budget is 10.0 MiB and it holds 8.0 MiB (sentiment/v1 8.0 MiB)") {
		t.Fatalf("3 MiB beside 8 in 10: %v", err)
	}
	release, err := srv.reserve("reviews", "r1", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.reserve("reviews", "r2", 1<<20+1); !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "loading 1.0 MiB more") {
		t.Fatalf("past a reservation: %v", err)
	}
	release()
	release() // once only
	if st := srv.budgetState(); st.LoadingMiB != 0 || st.HeldMiB != 8 {
		t.Errorf("after release: %+v", st)
	}
	if _, err := srv.reserve("reviews", "r2", 2<<20); err != nil {
		t.Errorf("2 MiB beside 8 in 10: %v", err)
	}
}
