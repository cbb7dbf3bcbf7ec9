package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// liveEvery is how often a live stream looks at the state it follows.
const liveEvery = 250 * time.Millisecond

// live answers a server-sent event stream for one live part of a page:
// every liveEvery it reads the state with state and sends a "change"
// event when it differs from the last one read; live.js then fetches the
// part's fragment again. A failed read sends nothing: the page keeps
// what it shows until the state can be read again.
func (c *Console) live(w http.ResponseWriter, r *http.Request, state func(context.Context) (any, error)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	var last []byte
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		if v, err := state(r.Context()); err == nil {
			now, _ := json.Marshal(v)
			if last != nil && string(now) != string(last) {
				fmt.Fprintf(w, "event: change\ndata: %d\n\n", n)
				flusher.Flush()
			}
			last = now
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
