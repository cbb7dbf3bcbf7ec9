package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// pki is the stack's throwaway CA and the certificates it issued, made
// fresh on every start under the state directory; nil runs plain HTTP.
// Every service serves TLS, the internal ones require client certificates
// (mutual TLS) and every hop verifies the server against the CA, as a
// deployment with cert-manager would.
type pki struct {
	ca    string               // the CA certificate file
	certs map[string][2]string // name -> certificate and key files
	// client is the TLS configuration of the stack's own requests and of
	// sentctl: the CA and the "operator" client certificate.
	client *tls.Config
}

// newPKI makes the CA and one certificate per name, plus "operator".
func newPKI(dir string, names []string) (*pki, error) {
	ca, err := devca.New(dir, "sentiment local stack CA", 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	p := &pki{ca: ca.CertFile(), certs: map[string][2]string{}}
	for _, name := range append(names, "operator") {
		cert, key, err := ca.Issue(name, name, 7*24*time.Hour)
		if err != nil {
			return nil, err
		}
		p.certs[name] = [2]string{cert, key}
	}
	op := p.certs["operator"]
	if p.client, err = tlsfiles.ClientConfig(p.ca, op[0], op[1], nil); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pki) scheme() string {
	if p == nil {
		return "http"
	}
	return "https"
}

// serve is the flags a service needs to serve name's certificate, and
// with mutual, to require client certificates from the CA.
func (p *pki) serve(name string, mutual bool) []string {
	if p == nil {
		return nil
	}
	args := []string{"-tls-cert", p.certs[name][0], "-tls-key", p.certs[name][1]}
	if mutual {
		args = append(args, "-tls-client-ca", p.ca)
	}
	return args
}

// edgeArgs: an edge serves mutual TLS and verifies the registry and its
// peers against the CA, presenting its own certificate.
func (p *pki) edgeArgs(name string) []string {
	if p == nil {
		return nil
	}
	return append(p.serve(name, true), "-tls-ca", p.ca)
}

// registryArgs: the registry serves mutual TLS and reads the edges'
// metrics (for rollouts) over mutual TLS with its own certificate.
func (p *pki) registryArgs() []string {
	if p == nil {
		return nil
	}
	return append(p.serve("registry", true), "-edge-ca", p.ca)
}

// geoArgs: the router serves TLS to the public (no client certificates)
// and reaches edges over mutual TLS.
func (p *pki) geoArgs() []string {
	if p == nil {
		return nil
	}
	return append(p.serve("geo", false), "-edge-ca", p.ca, "-edge-cert", p.certs["geo"][0], "-edge-key", p.certs["geo"][1])
}

func (p *pki) httpClient(timeout time.Duration) *http.Client {
	if p == nil {
		return &http.Client{Timeout: timeout}
	}
	return tlsfiles.HTTPClient(p.client, timeout)
}

// sentctlEnv is what sentctl needs to reach the registry: the lines of
// the state directory's sentctl.env.
func (p *pki) sentctlEnv(registryURL string) string {
	env := fmt.Sprintf("SENTCTL_REGISTRY=%s\n", registryURL)
	if p != nil {
		op := p.certs["operator"]
		env += fmt.Sprintf("SENTCTL_CA=%s\nSENTCTL_CERT=%s\nSENTCTL_KEY=%s\n", abs(p.ca), abs(op[0]), abs(op[1]))
	}
	return env
}

func abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}
