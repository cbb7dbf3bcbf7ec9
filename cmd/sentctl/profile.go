package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sentimentpro/sentiment/internal/config"
)

// Profile is one registry sentctl can talk to: its URLs, where its token
// is, and its TLS files. Profiles live in the config file
// (SENTCTL_CONFIG, default ~/.config/sentctl/config.json):
//
//	{"current": "local",
//	 "profiles": {"local": {"registry": "http://127.0.0.1:8081", "token_file": ".run/admin.token"},
//	              "prod":  {"registry": "https://r1:8081,https://r2:8081", "token_file": "~/.sentctl/prod.token",
//	                        "ca": "~/.sentctl/ca.pem", "cert": "~/.sentctl/me.pem", "key": "~/.sentctl/me-key.pem"}}}
//
// A flag beats its SENTCTL_* variable, which beats the profile.
type Profile struct {
	Registry  string `json:"registry"`
	TokenFile string `json:"token_file,omitempty"`
	CA        string `json:"ca,omitempty"`
	Cert      string `json:"cert,omitempty"`
	Key       string `json:"key,omitempty"`
}

type configFile struct {
	Current  string             `json:"current"`
	Profiles map[string]Profile `json:"profiles"`
}

func configPath() string {
	if p := os.Getenv("SENTCTL_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "sentctl", "config.json")
}

// loadProfile returns the named profile ("" means the file's current
// one); no config file and no name is no profile.
func loadProfile(name string) (Profile, error) {
	path := configPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && name == "" {
		return Profile{}, nil
	}
	if err != nil {
		return Profile{}, usageError{fmt.Errorf("cannot read the config file %s: %w", path, err)}
	}
	var cfg configFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Profile{}, usageError{fmt.Errorf("config file %s: %w", path, err)}
	}
	if name == "" {
		name = cfg.Current
	}
	if name == "" {
		return Profile{}, nil
	}
	p, ok := cfg.Profiles[name]
	if !ok {
		names := make([]string, 0, len(cfg.Profiles))
		for n := range cfg.Profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return Profile{}, usageError{fmt.Errorf("no profile %q in %s (it has %s)", name, path, strings.Join(names, ", "))}
	}
	for _, f := range []*string{&p.TokenFile, &p.CA, &p.Cert, &p.Key} {
		*f = expandHome(*f)
	}
	return p, nil
}

func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}

// token is SENTCTL_TOKEN, else the profile's token file.
func (p Profile) token() (string, error) {
	if t := os.Getenv("SENTCTL_TOKEN"); t != "" || p.TokenFile == "" {
		return t, nil
	}
	f, err := os.Open(p.TokenFile)
	if err != nil {
		return "", fmt.Errorf("cannot read the profile's token file: %w", err)
	}
	defer f.Close()
	// Checked on the open file, so a swap after the check changes nothing.
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read the profile's token file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", usageError{fmt.Errorf("token file %s is readable or writable by others (mode %04o): chmod 600 %s", p.TokenFile, perm, p.TokenFile)}
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("cannot read the profile's token file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// checkTransport refuses to send a token in clear text: every replica
// in urls must be https, or on this machine (loopback), unless the user
// said --allow-plain-http.
func checkTransport(urls, token string, allowPlain bool) error {
	if token == "" || allowPlain {
		return nil
	}
	for _, raw := range config.List(urls) {
		u, err := url.Parse(raw)
		if err != nil {
			return usageError{fmt.Errorf("registry URL %q: %w", raw, err)}
		}
		if u.Scheme == "https" || u.Scheme == "http" && loopback(u.Hostname()) {
			continue
		}
		return usageError{fmt.Errorf("refusing to send the token in clear text to %s: use an https URL, or --allow-plain-http", raw)}
	}
	return nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}
