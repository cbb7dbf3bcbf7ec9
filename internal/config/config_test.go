package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestSecretsComeFromTheEnvironment: a token on the command line is
// refused with the variable to use instead; the same token in the
// environment is taken.
func TestSecretsComeFromTheEnvironment(t *testing.T) {
	parse := func(args ...string) (string, error) {
		fs := flag.NewFlagSet("edge", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		token := fs.String("registry-token", "", "")
		fs.String("region", "", "")
		err := Parse(fs, args, "EDGE")
		return *token, err
	}
	if _, err := parse("-region", "us-east", "-registry-token", "s3cret"); err == nil || !strings.Contains(err.Error(), "EDGE_REGISTRY_TOKEN") {
		t.Errorf("a token on the command line: %v, want an error naming EDGE_REGISTRY_TOKEN", err)
	}
	t.Setenv("EDGE_REGISTRY_TOKEN", "s3cret")
	if got, err := parse("-region", "us-east"); err != nil || got != "s3cret" {
		t.Errorf("a token in the environment: %q %v", got, err)
	}
}
