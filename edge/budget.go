package edge

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// What several models on one edge share: the memory budget their versions
// are held in, and the artifact cache their syncers keep.

// ErrOverBudget marks a version that does not fit this edge's memory
// budget beside the versions it holds. It is not ErrRejected: the syncer
// tries again (backing off) and loads it once it fits, e.g. after another
// model's rollout ends.
var ErrOverBudget = errors.New("does not fit the memory budget")

var budgetRefusals = metrics.NewCounter(`edge_model_rejected_total{reason="memory_budget"}`)

// budget bounds the bytes of the versions held (Config.MemoryBudget):
// every slot's stable version and candidate, and the versions being
// loaded, which reserve their size before a byte is fetched.
type budget struct {
	limit    int64
	mu       sync.Mutex
	reserved int64
}

// budgetState is the budget as /health/ready shows it.
type budgetState struct {
	LimitMiB   float64 `json:"limit_mib"`
	HeldMiB    float64 `json:"held_mib"`
	LoadingMiB float64 `json:"loading_mib"`
}

// held is the bytes of the versions the slots hold (a predictor counted
// once, though a promoted candidate is also the stable version), and
// what they are, for messages.
func (s *Server) held() (int64, []string) {
	var total int64
	var what []string
	seen := map[any]bool{}
	for _, sl := range s.slots {
		for _, sv := range sl.held() {
			if seen[sv.Predictor] {
				continue
			}
			seen[sv.Predictor] = true
			total += sv.Bytes
			what = append(what, fmt.Sprintf("%s/%s %.1f MiB", sv.Name, sv.Version, mib(sv.Bytes)))
		}
	}
	return total, what
}

// reserve holds n bytes of the budget for a version of model being
// loaded, or says why it does not fit. release gives them back once the
// version is held (it then counts as held) or was not loaded.
func (s *Server) reserve(model, version string, n int64) (release func(), err error) {
	b := &s.budget
	if b.limit <= 0 {
		return func() {}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	held, what := s.held()
	if held+b.reserved+n > b.limit {
		budgetRefusals.Inc()
		loading := ""
		if b.reserved > 0 {
			loading = fmt.Sprintf(" and is loading %.1f MiB more", mib(b.reserved))
		}
		return nil, fmt.Errorf("%w: %s/%s is %.1f MiB; this edge's budget is %.1f MiB and it holds %.1f MiB (%s)%s",
			ErrOverBudget, model, version, mib(n), mib(b.limit), mib(held), strings.Join(what, ", "), loading)
	}
	b.reserved += n
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.reserved -= n
			b.mu.Unlock()
		})
	}, nil
}

func (s *Server) budgetState() *budgetState {
	if s.budget.limit <= 0 {
		return nil
	}
	s.budget.mu.Lock()
	defer s.budget.mu.Unlock()
	held, _ := s.held()
	return &budgetState{LimitMiB: mib(s.budget.limit), HeldMiB: mib(held), LoadingMiB: mib(s.budget.reserved)}
}

func mib(n int64) float64 { return math.Round(float64(n)/(1<<20)*10) / 10 }

// blobKeeper guards the artifact cache every model's syncer shares: a
// prune deletes only what no slot holds or kept as its previous version
// (for a quick rollback), and no download under way.
type blobKeeper struct {
	mu       sync.Mutex
	fetching map[string]int // digest -> downloads of it under way
}

// fetching marks digest as being downloaded until done is called.
func (k *blobKeeper) fetch(digest string) (done func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fetching == nil {
		k.fetching = map[string]int{}
	}
	k.fetching[digest]++
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.fetching[digest]--; k.fetching[digest] <= 0 {
			delete(k.fetching, digest)
		}
	}
}

// prune deletes from dir's artifacts (and cut downloads) every one that no
// slot of s holds or kept as previous, that is not in extra (a version a
// syncer is about to hold) and that is not being downloaded.
func (s *Server) prune(dir string, extra ...string) {
	k := &s.cache
	k.mu.Lock()
	defer k.mu.Unlock()
	keep := map[string]bool{}
	for _, d := range extra {
		keep[d] = true
	}
	for d := range k.fetching {
		keep[d] = true
	}
	for _, sl := range s.slots {
		for _, sv := range sl.held() {
			keep[sv.Digest] = true
		}
		if p := sl.previous.Load(); p != nil {
			keep[*p] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		hex, _, _ := strings.Cut(name, ".")
		if keep["sha256:"+hex] || !(strings.HasSuffix(name, ".sapm") || strings.HasSuffix(name, ".partial")) {
			continue
		}
		os.Remove(filepath.Join(dir, "blobs", name))
	}
}
