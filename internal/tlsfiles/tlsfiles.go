// Package tlsfiles builds TLS configurations from PEM files. A server's
// certificate is reloaded when its files change, so a rotated certificate
// (cert-manager renewing a Secret, say) is served without a restart, as
// Consul, Envoy and Caddy do; a bad new pair is logged and the old one kept.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate from certFile and keyFile, reading them
// again at most once per CheckEvery when either file's modification time
// or size changed.
type Reloader struct {
	certFile, keyFile string
	// CheckEvery spaces the checks of the files (default 1s).
	CheckEvery time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the pair loaded
	checked time.Time
}

// NewReloader loads the pair once; an error means it cannot be used.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, CheckEvery: time.Second, log: log}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load TLS certificate %q and key %q: %w", certFile, keyFile, err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, time.Now()
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("cannot read TLS file: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.CheckEvery {
		r.checked = now
		r.reload()
	}
	return r.cert, nil
}

// reload reads the pair again if its files changed; r.mu is held.
func (r *Reloader) reload() {
	stamp, err := r.fileStamp()
	if err != nil || stamp == r.stamp {
		return
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Half-written during a rotation, or bad: keep serving the old one.
		r.log.Warn("cannot load the changed TLS certificate; keeping the old one", "cert", r.certFile, "err", err)
		return
	}
	r.cert, r.stamp = &cert, stamp
	r.log.Info("TLS certificate reloaded", "cert", r.certFile)
}

// ServerConfig is a server configuration serving r's certificate.
func ServerConfig(r *Reloader) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// Listener wraps ln in TLS with the certificate in certFile and keyFile,
// reloaded when they change; with no certFile it returns ln as it is.
func Listener(ln net.Listener, certFile, keyFile string, log *slog.Logger) (net.Listener, error) {
	if certFile == "" {
		return ln, nil
	}
	certs, err := NewReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, ServerConfig(certs)), nil
}

// ClientConfig is a client configuration trusting the CA certificates in
// caFile; an empty caFile trusts the system's.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no PEM certificate in CA file %q", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
