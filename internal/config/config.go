// Package config holds the helpers every main uses to build its Config:
// flags with environment fallbacks (the command line wins) and list
// parsing.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Parse parses args into fs, then fills what the command line left unset
// from PREFIX_* environment variables. A secret (a token or key) given on
// the command line is an error: ps would show it.
func Parse(fs *flag.FlagSet, args []string, prefix string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if secrets[f.Name] && err == nil {
			err = fmt.Errorf("-%s is a secret: the command line shows it to every user of the machine (ps); set %s instead",
				f.Name, EnvName(prefix, f.Name))
		}
	})
	if err != nil {
		return err
	}
	return ApplyEnv(fs, prefix)
}

// secrets are the flags that are never taken from the command line, only
// from the environment (or a file the service reads).
var secrets = map[string]bool{"registry-token": true, "internal-token": true, "tokens": true,
	"s3-secret-key": true, "consul-token": true, "geo-token": true, "console-key": true}

// EnvName is the environment variable of a flag: PREFIX_NAME, upper case,
// '-' as '_'.
func EnvName(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ApplyEnv sets every flag of fs that was not given on the command line
// from the environment variable PREFIX_NAME (upper case, '-' as '_'), e.g.
// -s3-endpoint from REGISTRY_S3_ENDPOINT. Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet, prefix string) error { return ApplyEnvOf(fs, prefix, nil) }

// ApplyEnvOf is ApplyEnv for the flags named in only (all when nil): a
// CLI whose other flags must not change behind the user's back.
func ApplyEnvOf(fs *flag.FlagSet, prefix string, only map[string]bool) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil || only != nil && !only[f.Name] {
			return
		}
		env := EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid %s=%q: %w", env, v, serr)
			}
		}
	})
	return err
}

// List splits a comma-separated flag value, dropping empty items.
func List(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Pairs reads a comma-separated list of key=value pairs, e.g.
// "us-east=dc-us,eu-west=dc-eu".
func Pairs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range List(s) {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want key=value", item)
		}
		out[k] = v
	}
	return out, nil
}
