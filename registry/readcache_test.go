package registry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sentimentpro/sentiment/admin"
	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/registrytest"
	"github.com/sentimentpro/sentiment/store/s3"
)

// TestAWokenFleetReadsTheStoreOnce: 100 long-polls woken by one promote
// all get the new version, and the replica reads the channel and the
// version from S3 a few times, not once per poll.
func TestAWokenFleetReadsTheStoreOnce(t *testing.T) {
	srv := sharedS3(t)
	st, err := s3.New(srv.Config(testenv.NewBucket(t, srv, "readcache")))
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingStore{Store: st}
	reg := registrytest.Start(t, counted, registry.Config{WatchPoll: 100 * time.Millisecond, MaxWatchesPerClient: 200}, admin.Config{})
	registrytest.Publish(t, reg.Publisher, "demo", "v1", artifact(t, 1, 0))
	registrytest.Publish(t, reg.Publisher, "demo", "v2", artifact(t, 2, 0))
	ch := mustPromote(t, reg.Admin, "demo", "production", "v1")

	const fleet = 100
	var wg sync.WaitGroup
	got := make([]string, fleet)
	for i := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := reg.Reader.Resolve(context.Background(), "demo", "production", "eu-west", ch.Revision, 30*time.Second)
			if err == nil {
				got[i] = res.Version.Version
			} else {
				got[i] = err.Error()
			}
		}()
	}
	time.Sleep(time.Second) // all waiting
	before := counted.opens.Load()
	mustPromote(t, reg.Admin, "demo", "production", "v2")
	wg.Wait()
	reads := counted.opens.Load() - before
	for i, v := range got {
		if v != "v2" {
			t.Fatalf("long-poll %d answered %q, want v2", i, v)
		}
	}
	// The promote itself reads a few objects; the woken polls add one
	// read of the channel and one of the version.
	if reads > 12 {
		t.Errorf("%d long-polls woken by one promote cost %d object reads, want a handful", fleet, reads)
	}
	t.Logf("%d woken long-polls, %d object reads in all (the promote's included)", fleet, reads)
}
