package registry

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Role is what a token may do; each role includes the ones below it.
type Role int

// Roles.
const (
	RoleNone      Role = iota
	RoleReader         // edges and users: read models, versions, channels
	RolePublisher      // the ML team: upload and create versions, promote to non-production channels
	RoleAdmin          // operators: everything, including production, rollback, delete
)

func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RolePublisher:
		return "publisher"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reader":
		return RoleReader, nil
	case "publisher":
		return RolePublisher, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want reader, publisher or admin)", s)
}

// Principal is an authenticated caller.
type Principal struct {
	Name string
	Role Role
}

// Tokens maps bearer tokens to principals. Only SHA-256 hashes of the
// tokens are kept, and every lookup compares against all of them in
// constant time.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash [32]byte
	p    Principal
}

// ParseTokens reads "role:name:token" entries, one per line or separated by
// commas; blank lines and lines starting with # are ignored. Tokens must be
// at least 16 characters.
func ParseTokens(text string) (*Tokens, error) {
	t := &Tokens{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, ",", "\n")))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		parts := strings.SplitN(s, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("token entry %d: want role:name:token", line)
		}
		role, err := ParseRole(parts[0])
		if err != nil {
			return nil, fmt.Errorf("token entry %d: %w", line, err)
		}
		name, token := strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
		if name == "" || len(token) < 16 {
			return nil, fmt.Errorf("token entry %d: name must be set and the token at least 16 characters", line)
		}
		t.entries = append(t.entries, tokenEntry{hash: sha256.Sum256([]byte(token)), p: Principal{Name: name, Role: role}})
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens configured")
	}
	return t, nil
}

// Authenticate returns the principal for a bearer token.
func (t *Tokens) Authenticate(token string) (Principal, bool) {
	h := sha256.Sum256([]byte(token))
	var found Principal
	ok := 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e.p
			ok = 1
		}
	}
	return found, ok == 1 && token != ""
}
