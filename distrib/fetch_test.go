package distrib_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/distrib"
	"github.com/sentimentpro/sentiment/internal/rig"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/store/dir"
)

// publishedArtifact is a valid 4 MiB artifact, published in a registry in
// process.
func publishedArtifact(t *testing.T, cfg registry.Config) ([]byte, string, *registrytest.Server) {
	return publishedOfSize(t, cfg, 20)
}

// publishedOfSize publishes an artifact of 2^bits buckets (4·2^bits bytes).
func publishedOfSize(t *testing.T, cfg registry.Config, bits int) ([]byte, string, *registrytest.Server) {
	t.Helper()
	data, err := rig.LargeArtifact(bits, 7)
	if err != nil {
		t.Fatal(err)
	}
	st, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, st, cfg, admin.Config{})
	v := registrytest.Publish(t, reg.Publisher, "sentiment", "v1", data)
	return data, v.Digest, reg
}

// TestResumesWhereTheCutLeftOff: a download reset at half continues with
// a Range from the byte it had, and the artifact arrives whole, each byte
// once.
func TestResumesWhereTheCutLeftOff(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	half := len(data) / 2
	proxy, url := testenv.StartCutProxy(t, strings.TrimPrefix(reg.URL, "http://"), half)
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: &regclient.Client{BaseURL: url, Token: registrytest.ReaderToken}}}
	path := filepath.Join(t.TempDir(), "artifact")
	target := &distrib.File{Path: path}
	res, err := f.Fetch(context.Background(), digest, target)
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, data) {
		t.Fatalf("the artifact arrived changed: %d bytes, digest %s", len(got), model.Digest(got))
	}
	ranges := proxy.Ranges()
	if len(ranges) != 2 || ranges[0] != "" {
		t.Fatalf("requests' ranges %q, want a whole request then one resuming", ranges)
	}
	var from int
	if _, err := fmt.Sscanf(ranges[1], "bytes=%d-", &from); err != nil || from <= 0 || from > half {
		t.Fatalf("resumed with %q, want bytes=N- with 0 < N <= %d", ranges[1], half)
	}
	if res.Bytes["registry"] != int64(len(data)) || res.Resumed != 1 {
		t.Errorf("fetch %+v: want %d bytes from the registry, once resumed", res, len(data))
	}
	t.Logf("cut at byte %d, resumed from byte %d", half, from)
}

// TestContinuesTheFileACutDownloadLeft: the partial file of a download cut
// before a restart is continued, not fetched again.
func TestContinuesTheFileACutDownloadLeft(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	proxy, url := testenv.StartCutProxy(t, strings.TrimPrefix(reg.URL, "http://"), len(data)) // cuts nothing
	path := filepath.Join(t.TempDir(), "artifact")
	if err := os.WriteFile(path+".partial", data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: &regclient.Client{BaseURL: url, Token: registrytest.ReaderToken}}}
	target := &distrib.File{Path: path}
	res, err := f.Fetch(context.Background(), digest, target)
	if err != nil {
		t.Fatal(err)
	}
	target.Commit()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the continued artifact differs")
	}
	if r := proxy.Ranges(); len(r) != 1 || r[0] != "bytes=1000-" {
		t.Errorf("ranges asked %q, want [bytes=1000-]", r)
	}
	if res.Bytes["registry"] != int64(len(data)-1000) {
		t.Errorf("%d bytes from the registry, want %d", res.Bytes["registry"], len(data)-1000)
	}
}

// staticFinder is a Finder whose answer a test sets.
type staticFinder struct {
	mu    sync.Mutex
	h     distrib.Holders
	err   error
	calls int
}

func (f *staticFinder) Find(ctx context.Context, digest string, index uint64, wait time.Duration) (distrib.Holders, error) {
	f.mu.Lock()
	f.calls++
	h, err := f.h, f.err
	f.mu.Unlock()
	if index > 0 && err == nil {
		// Block a little, as Consul would until a change.
		select {
		case <-ctx.Done():
		case <-time.After(min(wait, 50*time.Millisecond)):
		}
	}
	h.Index = uint64(f.calls)
	return h, err
}

func (f *staticFinder) set(h distrib.Holders) {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
}

// blobPeer serves data as a peer's blob server would, under any digest.
func blobPeer(t *testing.T, data []byte, slots int) distrib.Peer {
	dir := t.TempDir()
	srv := &distrib.Server{Path: func(string) string { return filepath.Join(dir, "blob") }, Slots: slots}
	if err := os.WriteFile(filepath.Join(dir, "blob"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return distrib.Peer{Addr: strings.TrimPrefix(hs.URL, "http://"), Scheme: "http", HTTP: hs.Client()}
}

// TestRefusesAPeerThatLies: a peer's artifact with one byte flipped is
// not what the fetch returns; the artifact comes from the registry and
// the peer is not asked again.
func TestRefusesAPeerThatLies(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	bad := bytes.Clone(data)
	bad[len(bad)/3] ^= 0x01
	finder := &staticFinder{h: distrib.Holders{Peers: []distrib.Source{blobPeer(t, bad, 4)}, Sources: 1}}
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}, Finder: finder}
	var out bytes.Buffer
	res, err := f.Fetch(context.Background(), digest, &memTarget{&out})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the fetch returned other bytes than the artifact")
	}
	if res.Refused != 1 || res.Bytes["peer"] != int64(len(data)) || res.Bytes["registry"] != int64(len(data)) {
		t.Errorf("fetch %+v: want the peer's copy refused, then the registry's", res)
	}
}

// TestPrefersAPeerToTheRegistry: with a peer holding the artifact, the
// registry sends nothing; a busy peer (503, Retry-After) is passed over
// for a free one.
func TestPrefersAPeerToTheRegistry(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	busy := blobPeer(t, data, 1)
	// Hold busy's one slot with a request that reads nothing more.
	req, _ := http.NewRequest(http.MethodGet, "http://"+busy.Addr+distrib.BlobPath+digest, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	free := blobPeer(t, data, 4)
	finder := &staticFinder{h: distrib.Holders{Peers: []distrib.Source{busy, free}, Sources: 2}}
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}, Finder: finder}
	for range 5 { // the pick is random: both peers get asked
		var out bytes.Buffer
		res, err := f.Fetch(context.Background(), digest, &memTarget{&out})
		if err != nil {
			t.Fatal(err)
		}
		if res.Bytes["registry"] != 0 || res.Bytes["peer"] != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("fetch %+v: want everything from the free peer", res)
		}
	}
}

// TestWaitsForTheSeeder: a fetch that is not its region's seeder waits for
// a peer to hold the artifact instead of going to the registry; with no
// peer within PeerWait, or Consul unreachable for as long, it goes to the
// registry.
func TestWaitsForTheSeeder(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	finder := &staticFinder{h: distrib.Holders{Sources: 3}}
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}, Finder: finder, PeerWait: time.Minute}
	go func() {
		time.Sleep(300 * time.Millisecond) // the seeder got it
		finder.set(distrib.Holders{Peers: []distrib.Source{blobPeer(t, data, 4)}, Sources: 3})
	}()
	res, err := f.Fetch(context.Background(), digest, &memTarget{new(bytes.Buffer)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes["registry"] != 0 || res.Bytes["peer"] != int64(len(data)) {
		t.Errorf("fetch %+v: want it all from the peer that got it first", res)
	}

	finder.set(distrib.Holders{Sources: 3})
	f.PeerWait = 200 * time.Millisecond
	if res, err = f.Fetch(context.Background(), digest, &memTarget{new(bytes.Buffer)}); err != nil || res.Bytes["registry"] != int64(len(data)) {
		t.Errorf("no peer ever: fetch %+v, %v; want it from the registry after PeerWait", res, err)
	}

	broken := &staticFinder{err: errors.New("consul is down")}
	f = &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}, Finder: broken, PeerWait: 2 * time.Second}
	if res, err = f.Fetch(context.Background(), digest, &memTarget{new(bytes.Buffer)}); err != nil || res.Bytes["registry"] != int64(len(data)) {
		t.Errorf("consul down: fetch %+v, %v; want it from the registry after PeerWait", res, err)
	}
	if broken.calls < 2 {
		t.Errorf("consul down: looked for peers %d times, want it asked again before the registry", broken.calls)
	}
}

// TestHonoursTheRegistrysRetryAfter: a registry at its limit of streams
// answers 503 with Retry-After; the fetch waits and gets the artifact.
func TestHonoursTheRegistrysRetryAfter(t *testing.T) {
	data, digest, reg := publishedOfSize(t, registry.Config{MaxBlobStreams: 1}, 22)
	// A download that reads slowly through a small window holds the one
	// stream: 16 MiB do not fit in the sockets' buffers.
	conn, err := net.Dial("tcp", strings.TrimPrefix(reg.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/blobs/%s HTTP/1.1\r\nHost: registry\r\nAuthorization: Bearer %s\r\n\r\n", digest, registrytest.ReaderToken)
	if _, err := conn.Read(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	_, _, err = reg.Reader.OpenBlob(context.Background(), digest, 0)
	var ae *regclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter < time.Second {
		t.Fatalf("second stream past a limit of 1: %v, want 503 with Retry-After", err)
	}
	go func() { time.Sleep(500 * time.Millisecond); conn.Close() }()
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}}
	var out bytes.Buffer
	if _, err := f.Fetch(context.Background(), digest, &memTarget{&out}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("fetch after the registry was busy: %v", err)
	}
}

// TestRefusesWhatTheRegistryGetsWrong: bytes from the registry itself
// that do not hash to the digest end in ErrDigest.
func TestRefusesWhatTheRegistryGetsWrong(t *testing.T) {
	data, _, reg := publishedArtifact(t, registry.Config{})
	wrong := model.Digest([]byte("another artifact"))
	// The registry has no blob under wrong: serve the published one under it.
	f := &distrib.Fetcher{Registry: renamed{distrib.Registry{Client: reg.Reader}, model.Digest(data)}}
	_, err := f.Fetch(context.Background(), wrong, &memTarget{new(bytes.Buffer)})
	if !errors.Is(err, distrib.ErrDigest) {
		t.Fatalf("fetch of mismatching registry bytes: %v, want ErrDigest", err)
	}
}

// renamed serves its digest whatever digest is asked.
type renamed struct {
	distrib.Registry
	digest string
}

func (r renamed) Open(ctx context.Context, _ string, offset int64) (io.ReadCloser, int64, error) {
	return r.Registry.Open(ctx, r.digest, offset)
}

// memTarget keeps the download in memory.
type memTarget struct{ b *bytes.Buffer }

func (m *memTarget) Write(p []byte) (int, error)  { return m.b.Write(p) }
func (m *memTarget) Held() (io.ReadCloser, error) { return nil, nil }
func (m *memTarget) Reset() error                 { m.b.Reset(); return nil }

// endlessPeer answers every artifact with bytes that never end and no
// length: a peer gone wrong, or hostile.
type endlessPeer struct{ distrib.Peer }

func (endlessPeer) Name() string { return "peer endless" }

func (endlessPeer) Open(context.Context, string, int64) (io.ReadCloser, int64, error) {
	return io.NopCloser(zeros{}), -1, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestBoundsASourceWithoutALength: bytes from a peer that does not say how
// many it sends stop at MaxBytes; the peer is dropped and the artifact
// comes from the registry.
func TestBoundsASourceWithoutALength(t *testing.T) {
	data, digest, reg := publishedArtifact(t, registry.Config{})
	finder := &staticFinder{h: distrib.Holders{Peers: []distrib.Source{endlessPeer{}}, Sources: 1}}
	f := &distrib.Fetcher{Registry: distrib.Registry{Client: reg.Reader}, Finder: finder, MaxBytes: int64(len(data)) + 1000}
	var out bytes.Buffer
	res, err := f.Fetch(context.Background(), digest, &memTarget{&out})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) || res.Bytes["peer"] > int64(len(data))+1000 {
		t.Errorf("fetch %+v: want at most MaxBytes from the endless peer, then the artifact", res)
	}
}
