package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/devca"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// WriteCert writes a self-signed certificate for 127.0.0.1 named cn, and
// its key, as dir/cert.pem and dir/key.pem (replacing them), and returns
// the certificate's PEM: a CA file that trusts exactly it.
func WriteCert(t testing.TB, dir, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a reader that sees the new certificate finds its key.
	for _, f := range []struct {
		name string
		data []byte
	}{{"key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}, {"cert.pem", certPEM}} {
		tmp := filepath.Join(dir, f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
	return certPEM
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
