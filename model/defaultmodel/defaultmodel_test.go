package defaultmodel_test

import (
	"math"
	"os"
	"testing"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
	"github.com/sentimentpro/sentiment/model/train"
)

// sharedDev is SST-2 dev from the shared data beside the repository.
const sharedDev = "../../../shared/data/sst2/dev.tsv"

func TestDefaultModelMeetsItsRecordedAccuracy(t *testing.T) {
	m, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	md := m.Meta()
	if md.Metrics == nil || md.Metrics.Accuracy < 0.83 {
		t.Fatalf("recorded metrics %+v, want SST-2 dev accuracy >= 0.83", md.Metrics)
	}
	if _, err := os.Stat(sharedDev); err != nil {
		t.Fatalf("this test needs the shared SST-2 data: %v", err)
	}
	ds, err := train.ReadDataset(sharedDev, train.DataOptions{Labels: [2]string(m.Labels())})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := train.Evaluate(m, ds.Examples, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SST-2 dev accuracy %.4f over %d sentences", ev.Accuracy(), ev.Total())
	if math.Abs(ev.Accuracy()-md.Metrics.Accuracy) > 1e-4 || ds.Digest != md.Metrics.DataDigest {
		t.Fatalf("evaluated %.4f on %s, artifact records %.4f on %s", ev.Accuracy(), ds.Digest, md.Metrics.Accuracy, md.Metrics.DataDigest)
	}
	if m.Digest() != model.Digest(defaultmodel.Artifact()) {
		t.Fatal("digest does not match the embedded bytes")
	}
}
