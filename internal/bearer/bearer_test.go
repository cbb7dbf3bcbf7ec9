package bearer

import "testing"

func TestToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":    "abc",
		"bearer abc":    "abc",
		"BEARER   abc":  "abc",
		"Bearer a.b~c/": "a.b~c/",
	} {
		if got, ok := Token(header); !ok || got != want {
			t.Errorf("Token(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
	for _, header := range []string{"", "Bearer", "Bearer ", "Bearer   ", "Basic abc", "Bearerabc", "abc", "Token abc"} {
		if got, ok := Token(header); ok {
			t.Errorf("Token(%q) = %q, want none", header, got)
		}
	}
}
