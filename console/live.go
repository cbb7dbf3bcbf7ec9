package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// liveEvery is how often a live stream looks at the state it follows.
const liveEvery = 250 * time.Millisecond

// maxStreamsPerSession bounds the live streams one session holds open on
// a replica: a page has one, and a person a few tabs. Without it one
// session could open any number, each reading the registry (and, for the
// regions page, every edge's readiness through the router) four times a
// second.
const maxStreamsPerSession = 4

// live answers a server-sent event stream for one live part of a page: a
// "change" event each time the state, read every liveEvery, differs from
// the last one read; live.js then fetches the part's fragment again. A
// failed read sends nothing: the page keeps what it shows until the state
// can be read again. Every stream of one key shares one poller, so tabs
// on one page read the state once.
func (c *Console) live(w http.ResponseWriter, r *http.Request, s *session, key string, state func(context.Context) (any, error)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	if !c.streams.Acquire(s.ID, maxStreamsPerSession) {
		w.Header().Set("Retry-After", "5")
		c.fail(w, http.StatusTooManyRequests, fmt.Sprintf("this session already has %d live views open: close a tab", maxStreamsPerSession))
		return
	}
	defer c.streams.Release(s.ID)
	changes, leave := c.pollers.join(key, state)
	defer leave()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for n := 0; ; n++ {
		select {
		case <-r.Context().Done():
			return
		case <-changes:
			fmt.Fprintf(w, "event: change\ndata: %d\n\n", n)
			flusher.Flush()
		}
	}
}

// pollers runs one poller per key while any stream follows it.
type pollers struct {
	mu    sync.Mutex
	byKey map[string]*poller
}

// poller reads one state every liveEvery and tells its streams when it
// changed.
type poller struct {
	streams map[chan struct{}]bool
	stop    context.CancelFunc
}

// join follows key, starting its poller on state if none runs. The
// channel receives a value when the state changed; leave ends the
// following, and the poller with its last stream.
func (ps *pollers) join(key string, state func(context.Context) (any, error)) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.byKey == nil {
		ps.byKey = map[string]*poller{}
	}
	p := ps.byKey[key]
	if p == nil {
		ctx, stop := context.WithCancel(context.Background())
		p = &poller{streams: map[chan struct{}]bool{}, stop: stop}
		ps.byKey[key] = p
		go ps.poll(ctx, p, state)
	}
	p.streams[ch] = true
	return ch, func() {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		delete(p.streams, ch)
		if len(p.streams) == 0 {
			p.stop()
			delete(ps.byKey, key)
		}
	}
}

func (ps *pollers) poll(ctx context.Context, p *poller, state func(context.Context) (any, error)) {
	var last []byte
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	for {
		if v, err := state(ctx); err == nil {
			now, _ := json.Marshal(v)
			if last != nil && string(now) != string(last) {
				ps.notify(p)
			}
			last = now
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// notify tells every stream of p, without waiting: a stream that has not
// yet sent the last change sends one event for both.
func (ps *pollers) notify(p *poller) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for ch := range p.streams {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
