package edge

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// Triton's statistics and model repository extensions of the Open
// Inference Protocol, on REST: per-version inference statistics in
// Triton's field names, and the repository index. Loading and unloading
// are the registry's (promote, roll back), so those routes refuse with a
// reason.

// inferStats are a version's inference statistics, shared by its counted
// and uncounted twins.
type inferStats struct {
	inferences, executions atomic.Int64 // texts; Predict calls
	successNs, failNs      atomic.Int64
	fails                  atomic.Int64
	lastUnixMs             atomic.Int64
}

// record adds one Predict call of n texts that took d.
func (st *inferStats) record(n int, d time.Duration, failed bool) {
	st.lastUnixMs.Store(time.Now().UnixMilli())
	if failed {
		st.fails.Add(1)
		st.failNs.Add(int64(d))
		return
	}
	st.executions.Add(1)
	st.inferences.Add(int64(n))
	st.successNs.Add(int64(d))
}

// durationStat is Triton's {"count", "ns"}.
type durationStat struct {
	Count int64 `json:"count"`
	Ns    int64 `json:"ns"`
}

type modelStats struct {
	Name           string                  `json:"name"`
	Version        string                  `json:"version"`
	LastInference  int64                   `json:"last_inference"`
	InferenceCount int64                   `json:"inference_count"`
	ExecutionCount int64                   `json:"execution_count"`
	InferenceStats map[string]durationStat `json:"inference_stats"`
	BatchStats     []struct{}              `json:"batch_stats"`
}

// statsOf is sv's statistics: success and compute_infer are the time in
// the model; the edge has no queue or separate input and output steps
// (an ONNX model's batching queue is inside the model's time).
func statsOf(sv *Serving) modelStats {
	st := sv.stats
	ok := durationStat{Count: st.executions.Load(), Ns: st.successNs.Load()}
	zero := durationStat{Count: ok.Count}
	return modelStats{Name: sv.Name, Version: sv.Version, LastInference: st.lastUnixMs.Load(),
		InferenceCount: st.inferences.Load(), ExecutionCount: ok.Count, BatchStats: []struct{}{},
		InferenceStats: map[string]durationStat{"success": ok, "fail": {Count: st.fails.Load(), Ns: st.failNs.Load()},
			"queue": zero, "compute_input": zero, "compute_infer": ok, "compute_output": zero,
			"cache_hit": {}, "cache_miss": {}}}
}

// modelStatsRoute answers GET /v2/models[/{name}[/versions/{v}]]/stats:
// the version named, every held version of the model named, or every held
// version of every model.
func (s *Server) modelStatsRoute(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	var out []modelStats
	name, named := ctx.UserValue("name").(string)
	_, versioned := ctx.UserValue("version").(string)
	switch {
	case versioned:
		held, err := s.servedModel(ctx)
		if err != nil {
			return err
		}
		out = append(out, statsOf(held))
	case named:
		sl, err := s.lookup(name)
		if err != nil {
			return err
		}
		for _, h := range sl.held() {
			out = append(out, statsOf(h))
		}
	default:
		for _, sl := range s.slots {
			for _, h := range sl.held() {
				out = append(out, statsOf(h))
			}
		}
	}
	return writeJSON(ctx, map[string]any{"model_stats": nonNil(out)})
}

// repositoryIndex answers POST /v2/repository/index: every model this
// edge serves, its held versions READY, a model with none UNAVAILABLE with
// the reason. A body, if any, must be JSON (Triton's {"ready": bool}:
// true lists only what is ready).
func (s *Server) repositoryIndex(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	readyOnly := false
	if body := ctx.PostBody(); len(body) > 0 {
		var req struct {
			Ready *bool `json:"ready"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return httperr.New(fasthttp.StatusBadRequest, `the body must be JSON like {"ready": true}: %v`, err)
		}
		readyOnly = req.Ready != nil && *req.Ready
	}
	type entry struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		State   string `json:"state"`
		Reason  string `json:"reason"`
	}
	out := []entry{}
	for _, sl := range s.slots {
		held := sl.held()
		for _, h := range held {
			out = append(out, entry{Name: sl.name, State: "READY", Version: h.Version})
		}
		if len(held) == 0 && !readyOnly {
			_, reason := httperr.From(sl.notLoaded())
			out = append(out, entry{Name: sl.name, State: "UNAVAILABLE", Reason: reason})
		}
	}
	return writeJSON(ctx, out)
}

// repositoryControl refuses POST /v2/repository/models/{name}/load and
// /unload: which version an edge serves is the registry's channel.
func (s *Server) repositoryControl(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	return httperr.New(fasthttp.StatusConflict, "this edge's models are placed by the registry: promote or roll back the channel "+
		"(sentctl promote, sentctl rollback) instead of loading or unloading %q here", ctx.UserValue("name"))
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
