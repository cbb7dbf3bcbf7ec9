package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/model/bundle"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

// TestONNXSwapReleasesMemory promotes one version of the example ONNX
// bundle after another under steady load: no request may fail, and once
// the old session is released the edge's resident memory is back within
// 10 % of what it was before the swap (a CI run allows 50 %: a busy
// machine's allocator keeps more).
func TestONNXSwapReleasesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("real-service scenario")
	}
	lib := testenv.ONNXRuntime(t)
	s3srv := testenv.S3(t)
	bucket := testenv.NewBucket(t, s3srv, "onnx")
	var s services
	addrs := freeAddrs(t, 2)
	s.registry(t, "registry", addrs[0], s3srv, bucket, "")
	admin := &regclient.Client{BaseURL: "http://" + addrs[0], Token: adminToken}
	ctx := context.Background()
	// Two versions of the same model with distinct bytes (a note file
	// differs), so the second gets a session of its own.
	for _, v := range []string{"v1", "v2"} {
		dir := t.TempDir()
		src := "../examples/onnx/sentiment-tiny-bert"
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, _ := os.ReadFile(filepath.Join(src, e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
		}
		os.WriteFile(filepath.Join(dir, "NOTE.txt"), []byte("version "+v+"\n"), 0o644)
		var buf bytes.Buffer
		if err := bundle.PackDir(dir, &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Publish(ctx, "demo", v, bytes.NewReader(buf.Bytes()), int64(buf.Len()), wire.NewVersion{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	edge := s.startEdge(t, testenv.Edge{Name: "edge", Addr: addrs[1], Model: "demo", Registry: "http://" + addrs[0], Token: readerToken,
		Args: []string{"-onnxruntime-lib", lib}})
	testenv.Until(t, 30*time.Second, "the edge serves v1", func() bool { return servedVersion(addrs[1]) == "v1" })

	rate := pick(100.0, 400.0)
	l := startLoad("http://"+addrs[1]+"/v1/predict", "", rate, 256)
	time.Sleep(pick(3*time.Second, 20*time.Second))
	before := rss(t, edge.Process)
	if _, err := admin.Promote(ctx, "demo", "production", wire.MoveRequest{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, 30*time.Second, "the edge serves v2", func() bool { return servedVersion(addrs[1]) == "v2" })
	during := rss(t, edge.Process)
	// The retired session is released 10 s (RetireGrace) after the swap.
	released := testenv.Until(t, 60*time.Second, "the edge logs the release", func() bool {
		data, _ := os.ReadFile(edge.Process.LogPath)
		return strings.Contains(string(data), "released a retired model")
	})
	time.Sleep(pick(3*time.Second, 20*time.Second))
	after := rss(t, edge.Process)
	l.Stop()
	t.Logf("RSS before the swap %.1f MiB, with both sessions %.1f MiB, after the release %.1f MiB; load %s",
		mib(before), mib(during), mib(after), l.Summary())
	if n := l.Failed.Load() + l.Rejected.Load(); n > 0 {
		t.Errorf("%d requests failed across the swap: %s", n, l.Summary())
	}
	limit := pick(1.5, 1.1)
	if float64(after) > limit*float64(before) {
		t.Errorf("RSS after the release %.1f MiB, more than %.0f%% of %.1f MiB before the swap", mib(after), limit*100, mib(before))
	}
	report(row{scenario: "ONNX model promoted over another", offered: fmt.Sprintf("%.0f/s", rate), requests: l.Sent.Load(),
		failed: l.Failed.Load() + l.Rejected.Load(), recovery: fmt.Sprintf("old session released %v after v2 served", released.Round(time.Second)),
		memGrowth: fmt.Sprintf("%+.0f%% after release (%.0f → %.0f MiB; %.0f with both)", 100*(float64(after)/float64(before)-1), mib(before), mib(after), mib(during))})
}
