package edge

import (
	"runtime/debug"
	"time"

	"github.com/sentimentpro/sentiment/inference/onnxmodel"
)

// RetireGrace is how long a predictor that stopped serving (swapped out,
// or a candidate dropped) stays open before it is closed: longer than a
// request takes from choosing it to its answer (an ONNX model's queue
// gives up after 2 s), so no request in flight finds it closed.
var RetireGrace = 10 * time.Second

// closer is a predictor holding resources beyond Go's heap: an ONNX
// model's session and runner.
type closer interface{ Close() }

// batcher is a predictor that queues work (an ONNX model).
type batcher interface {
	Stats() onnxmodel.Stats
	QueueLength() int
}

// retire closes old's predictor after RetireGrace unless, by then, the
// serving model or the candidate is using it again (a promoted candidate
// is the same predictor).
func (sl *Slot) retire(old *Serving) {
	if old == nil {
		return
	}
	c, ok := old.Predictor.(closer)
	if !ok || sl.inUse(old) {
		return
	}
	time.AfterFunc(RetireGrace, func() {
		if sl.inUse(old) {
			return
		}
		if _, ok := old.Predictor.(batcher); ok {
			unregisterBatcher(old.Name, old.Version)
		}
		c.Close()
		// The session's memory went back with Close; the bundle's bytes
		// are garbage now: hand them back too, rather than when the
		// scavenger gets to them.
		debug.FreeOSMemory()
		sl.srv.log.Info("released a retired model", "model", old.Name, "version", old.Version, "digest", old.Digest)
	})
}

// inUse says whether sv's predictor answers for the serving version or
// the candidate.
func (sl *Slot) inUse(sv *Serving) bool {
	if cur := sl.current.Load(); cur != nil && cur.Predictor == sv.Predictor {
		return true
	}
	c := sl.candidate.Load()
	return c != nil && c.Serving.Predictor == sv.Predictor
}
