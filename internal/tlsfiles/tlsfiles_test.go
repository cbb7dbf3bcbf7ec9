package tlsfiles_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// TestRotatedCertificateIsServed: a listener using the reloader serves a
// new certificate once its files change, without a restart, and keeps the
// old one while the new files are unusable.
func TestRotatedCertificateIsServed(t *testing.T) {
	dir := t.TempDir()
	first := testenv.WriteCert(t, dir, "first")
	r, err := tlsfiles.NewReloader(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.CheckEvery = 0
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsfiles.ServerConfig(r, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	served := func(caPEM []byte) string {
		t.Helper()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := tlsfiles.ClientConfig(ca, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return "refused: " + err.Error()
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(first); got != "first" {
		t.Fatalf("before rotation: %s", got)
	}
	second := testenv.WriteCert(t, dir, "second")
	if got := served(second); got != "second" {
		t.Fatalf("after rotation: %s", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(second); got != "second" {
		t.Fatalf("with a broken new certificate the old one must stay: %s", got)
	}
}
