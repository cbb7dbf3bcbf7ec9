package edge

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTritonExtensions: the statistics extension counts what the model
// did, in Triton's field names, per version; the repository index lists
// the versions held; load and unload are refused with the reason; server
// metadata names both extensions.
func TestTritonExtensions(t *testing.T) {
	_, c := newTestServer(t, Config{})
	if r := call(t, c, "GET", "/v2", ""); !strings.Contains(r.body, `"model_repository","statistics"`) {
		t.Errorf("server metadata: %s", r.body)
	}
	infer := `{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["a great film","a dull film"]}]}`
	for range 3 {
		if r := call(t, c, "POST", "/v2/models/sentiment/infer", infer); r.code != 200 {
			t.Fatalf("infer: %d %s", r.code, r.body)
		}
	}
	call(t, c, "POST", "/v1/predict", `{"text":"fine"}`)
	for _, path := range []string{"/v2/models/stats", "/v2/models/sentiment/stats", "/v2/models/sentiment/versions/v1/stats"} {
		r := call(t, c, "GET", path, "")
		var out struct {
			ModelStats []struct {
				Name, Version  string
				LastInference  int64                                `json:"last_inference"`
				InferenceCount int64                                `json:"inference_count"`
				Execution      int64                                `json:"execution_count"`
				InferenceStats map[string]struct{ Count, Ns int64 } `json:"inference_stats"`
			} `json:"model_stats"`
		}
		if err := json.Unmarshal([]byte(r.body), &out); err != nil || r.code != 200 || len(out.ModelStats) != 1 {
			t.Fatalf("%s: %d %s", path, r.code, r.body)
		}
		st := out.ModelStats[0]
		ok := st.InferenceStats["success"]
		if st.Name != "sentiment" || st.Version != "v1" || st.InferenceCount != 7 || st.Execution != 4 || ok.Count != 4 || ok.Ns <= 0 ||
			st.InferenceStats["compute_infer"] != ok || st.LastInference == 0 {
			t.Errorf("%s: %+v; want 7 texts in 4 executions", path, st)
		}
	}
	if r := call(t, c, "GET", "/v2/models/other/stats", ""); r.code != 404 {
		t.Errorf("stats of an unknown model: %d %s", r.code, r.body)
	}
	if r := call(t, c, "POST", "/v2/repository/index", `{"ready": true}`); r.code != 200 || r.body != `[{"name":"sentiment","version":"v1","state":"READY","reason":""}]`+"\n" {
		t.Errorf("repository index: %d %s", r.code, r.body)
	}
	if r := call(t, c, "POST", "/v2/repository/index", `{"ready": tru`); r.code != 400 {
		t.Errorf("repository index with a broken body: %d %s", r.code, r.body)
	}
	for _, action := range []string{"load", "unload"} {
		if r := call(t, c, "POST", "/v2/repository/models/sentiment/"+action, ""); r.code != 409 || !strings.Contains(r.body, "placed by the registry") {
			t.Errorf("%s: %d %s", action, r.code, r.body)
		}
	}
}
