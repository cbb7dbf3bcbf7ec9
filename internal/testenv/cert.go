package testenv

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// WriteCert writes a certificate for 127.0.0.1 named cn, from a CA of its
// own, and its key, as dir/cert.pem and dir/key.pem (replacing them, the
// key first), and returns the CA's PEM: a CA file that trusts exactly it.
func WriteCert(t testing.TB, dir, cn string) []byte {
	t.Helper()
	ca := NewCA(t)
	cert, key := IssueCert(t, ca, cn)
	for _, f := range [][2]string{{key, "key.pem"}, {cert, "cert.pem"}} {
		if err := os.Rename(f[0], filepath.Join(dir, f[1])); err != nil {
			t.Fatal(err)
		}
	}
	caPEM, err := os.ReadFile(ca.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	return caPEM
}

// NewCA makes a throwaway CA in a temporary directory.
func NewCA(t testing.TB) *devca.CA {
	t.Helper()
	ca, err := devca.New(t.TempDir(), "test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// IssueCert issues a loopback certificate named name from ca (serving and
// client auth) and returns its certificate and key files.
func IssueCert(t testing.TB, ca *devca.CA, name string) (cert, key string) {
	t.Helper()
	cert, key, err := ca.Issue(name, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TLSClient is an HTTP client trusting ca and, with cert and key,
// presenting that certificate.
func TLSClient(t testing.TB, ca *devca.CA, cert, key string) *http.Client {
	t.Helper()
	cfg, err := tlsfiles.ClientConfig(ca.CertFile(), cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tlsfiles.HTTPClient(cfg, 5*time.Second)
}
