package console

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sentimentpro/sentiment/registry/regclient"
)

// events is a server-sent event stream for a model's page: an event
// whenever what its regions show changes (a channel move, an edge
// converging), checked every 250 ms; live.js then fetches the fragment.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	path := "/v1/admin/models/" + url.PathEscape(r.PathValue("name")) + "/status?channel=production"
	last := ""
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var st regclient.Status
		if err := c.call(r.Context(), s.token, http.MethodGet, path, nil, &st); err == nil {
			if now := fmt.Sprintf("%+v", st); now != last {
				if last != "" {
					fmt.Fprintf(w, "event: regions\ndata: %d\n\n", st.Revision)
					flusher.Flush()
				}
				last = now
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
