package via

import "testing"

func TestAppend(t *testing.T) {
	for _, c := range []struct{ received, protocol, by, want string }{
		{"", "HTTP/1.1", "sentiment-geo", "1.1 sentiment-geo"},
		{"", "HTTP/1.0", "sentiment-geo", "1.0 sentiment-geo"},
		{"1.1 lb.example (nginx)", "HTTP/1.1", "sentiment-geo", "1.1 lb.example (nginx), 1.1 sentiment-geo"},
		{"1.1 sentiment-geo", "HTTP/1.1", "edge-eu-west", "1.1 sentiment-geo, 1.1 edge-eu-west"},
	} {
		if got := string(Append(nil, []byte(c.received), []byte(c.protocol), c.by)); got != c.want {
			t.Errorf("Append(%q, %q, %q) = %q, want %q", c.received, c.protocol, c.by, got, c.want)
		}
	}
}
