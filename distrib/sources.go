package distrib

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/sentimentpro/sentiment/registry/regclient"
)

// Registry is the registry as a Source.
type Registry struct{ Client *regclient.Client }

func (Registry) Name() string { return "registry" }
func (Registry) Kind() string { return "registry" }

// Open reads the artifact from the registry, from offset on.
func (r Registry) Open(ctx context.Context, digest string, offset int64) (io.ReadCloser, int64, error) {
	return r.Client.OpenBlob(ctx, digest, offset)
}

// Peer is another edge's blob server as a Source.
type Peer struct {
	// Addr is its host:port; Scheme "http" or "https".
	Addr, Scheme string
	HTTP         *http.Client
}

func (p Peer) Name() string { return "peer " + p.Addr }
func (Peer) Kind() string   { return "peer" }

// Open reads the artifact from the peer, from offset on.
func (p Peer) Open(ctx context.Context, digest string, offset int64) (io.ReadCloser, int64, error) {
	u := url.URL{Scheme: p.Scheme, Host: p.Addr, Path: BlobPath + digest}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot reach %s: %w", p.Name(), err)
	}
	size, err := regclient.RangeAnswer(resp, offset)
	if err != nil {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("%s: %w", p.Name(), err)
	}
	return resp.Body, size, nil
}
