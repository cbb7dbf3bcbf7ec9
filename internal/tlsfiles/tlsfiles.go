// Package tlsfiles builds TLS configurations from PEM files. A
// certificate is reloaded when its files change, so a rotated certificate
// (cert-manager renewing a Secret, say) is served and presented without a
// restart, as Consul, Envoy and Caddy do; a bad new pair is logged and the
// old one kept. Server holds the listener flags every service shares,
// including mutual TLS: with a client CA, every request but a health probe
// needs a client certificate chained to it.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	return r.current(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate: a client
// presents the same rotating certificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

func (r *Reloader) current() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.CheckEvery {
		r.checked = now
		r.reload()
	}
	return r.cert
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

// ServerConfig is a server configuration serving r's certificate. With
// clientCAs, a client certificate is verified against them when one is
// given; Verified tells whether it was (health probes come without one).
func ServerConfig(r *Reloader, clientCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCAs != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, clientCAs
	}
	return cfg
}

// Server is a listener's TLS settings, as every service's flags.
type Server struct {
	Cert, Key string
	// ClientCA, when set, makes TLS mutual: every request but a health
	// probe needs a client certificate chained to it.
	ClientCA string
}

// Register defines -tls-cert, -tls-key and -tls-client-ca on fs.
func (s *Server) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.Cert, "tls-cert", "", "TLS certificate file (with -tls-key); reloaded when it changes")
	fs.StringVar(&s.Key, "tls-key", "", "TLS key file")
	fs.StringVar(&s.ClientCA, "tls-client-ca", "", "CA file: require client certificates chained to it (mutual TLS) on all but /health/*")
}

// Validate checks the combination of settings.
func (s Server) Validate() error {
	if (s.Cert == "") != (s.Key == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if s.ClientCA != "" && s.Cert == "" {
		return errors.New("-tls-client-ca needs -tls-cert")
	}
	return nil
}

// Enabled reports whether the listener serves TLS.
func (s Server) Enabled() bool { return s.Cert != "" }

// Mutual reports whether clients must present certificates.
func (s Server) Mutual() bool { return s.ClientCA != "" }

// Scheme is the URL scheme the listener serves.
func (s Server) Scheme() string {
	if s.Enabled() {
		return "https"
	}
	return "http"
}

// Listener wraps ln in TLS with the certificate in s.Cert and s.Key,
// reloaded when they change; without a certificate it returns ln as it is.
func (s Server) Listener(ln net.Listener, log *slog.Logger) (net.Listener, error) {
	if !s.Enabled() {
		return ln, nil
	}
	cfg, err := s.Config(log)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}

// Config is the server configuration of s (certificates reloaded when
// their files change; client certificates verified when given, with
// ClientCA), for a server that does its own TLS, such as gRPC's. Nil
// without a certificate.
func (s Server) Config(log *slog.Logger) (*tls.Config, error) {
	if !s.Enabled() {
		return nil, nil
	}
	certs, err := NewReloader(s.Cert, s.Key, log)
	if err != nil {
		return nil, err
	}
	var clientCAs *x509.CertPool
	if s.ClientCA != "" {
		if clientCAs, err = loadPool(s.ClientCA); err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
	}
	return ServerConfig(certs, clientCAs), nil
}

// Verified reports whether the connection presented a client certificate
// that chained to the client CA.
func Verified(state *tls.ConnectionState) bool {
	return state != nil && len(state.VerifiedChains) > 0
}

// Exempt reports whether path is a health probe, which needs no client
// certificate: Consul's checks and Kubernetes' probes present none.
func Exempt(path string) bool {
	return path == "/health/live" || path == "/health/ready"
}

// ClientConfig is a client configuration trusting the CA certificates in
// caFile (empty: the system's) and, with certFile and keyFile, presenting
// that certificate (reloaded when it changes) to servers that ask.
func ClientConfig(caFile, certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		certs, err := NewReloader(certFile, keyFile, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = certs.GetClientCertificate
	}
	return cfg, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no PEM certificate in CA file %q", caFile)
	}
	return pool, nil
}

// HTTPClient is a net/http client with the default transport's settings
// and cfg for TLS.
func HTTPClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = cfg
	return &http.Client{Timeout: timeout, Transport: transport}
}
