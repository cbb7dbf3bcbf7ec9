// Package devca is a throwaway certificate authority for local stacks and
// tests: it makes a CA and issues certificates for 127.0.0.1 and
// localhost that serve and authenticate as clients (mutual TLS). It is not
// for production, where cert-manager or the operators' PKI issues them
// (docs/SECURITY.md).
package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority whose files live in Dir.
type CA struct {
	Dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// CertFile is the CA certificate's file, the one clients and servers trust.
func (ca *CA) CertFile() string { return filepath.Join(ca.Dir, "ca.pem") }

// New makes a CA valid for validFor and writes its certificate to
// dir/ca.pem (the key stays in memory: a throwaway CA issues its
// certificates at once).
func New(dir, name string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validFor),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cannot make the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Dir: dir, cert: cert, key: key}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return ca, writeAtomic(ca.CertFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// Issue writes a certificate named cn for 127.0.0.1, ::1 and localhost,
// valid for validFor, to dir/<file>.pem and its key to dir/<file>-key.pem,
// the key first, so a reloading reader never pairs a new certificate with
// an old key. It returns the two paths.
func (ca *CA) Issue(file, cn string, validFor time.Duration) (certFile, keyFile string, err error) {
	return ca.IssueFor(file, Names{Subject: pkix.Name{CommonName: cn},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNS: []string{"localhost"}}, validFor)
}

// Names are what a certificate is issued for: its subject (a client
// certificate's CN and O are a user and groups to Kubernetes), and the
// addresses and DNS names it serves.
type Names struct {
	Subject pkix.Name
	IPs     []net.IP
	DNS     []string
}

// IssueFor is Issue for other names than the loopback ones.
func (ca *CA) IssueFor(file string, names Names, validFor time.Duration) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: names.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validFor),
		IPAddresses: names.IPs, DNSNames: names.DNS,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", fmt.Errorf("cannot issue a certificate for %q: %w", names.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(ca.Dir, file+".pem"), filepath.Join(ca.Dir, file+"-key.pem")
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// writeAtomic replaces path with data in one rename.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
