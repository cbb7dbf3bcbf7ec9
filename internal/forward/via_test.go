package forward

import "testing"

func TestAppendVia(t *testing.T) {
	for _, c := range []struct{ received, protocol, by, want string }{
		{"", "HTTP/1.1", "sentiment-geo", "1.1 sentiment-geo"},
		{"", "HTTP/1.0", "sentiment-geo", "1.0 sentiment-geo"},
		{"1.1 lb.example (nginx)", "HTTP/1.1", "sentiment-geo", "1.1 lb.example (nginx), 1.1 sentiment-geo"},
		{"1.1 sentiment-geo", "HTTP/1.1", "edge-eu-west", "1.1 sentiment-geo, 1.1 edge-eu-west"},
	} {
		if got := string(appendVia(nil, []byte(c.received), []byte(c.protocol), c.by)); got != c.want {
			t.Errorf("appendVia(%q, %q, %q) = %q, want %q", c.received, c.protocol, c.by, got, c.want)
		}
	}
}
