package discovery

import (
	"testing"
)

// TestServedMeta: the models an edge serves round-trip through its meta,
// the first also in the single-model keys older readers use; an edge
// older than several models is read from those keys alone.
func TestServedMeta(t *testing.T) {
	meta := map[string]string{MetaRegion: "eu-west"}
	SetServed(meta, 0, ServedModel{Model: "sentiment", Channel: "production", Version: "v3", Digest: "sha256:aa"})
	SetServed(meta, 1, ServedModel{Model: "reviews", Channel: "stable", Rejected: "big"})
	if meta[MetaModel] != "sentiment" || meta[MetaVersion] != "v3" || meta[MetaDigest] != "sha256:aa" {
		t.Errorf("single-model keys: %v", meta)
	}
	if _, ok := meta[MetaRejected]; ok {
		t.Errorf("the first model refused nothing: %v", meta)
	}
	for k, v := range meta {
		if len(k) > 128 || len(v) > 512 {
			t.Errorf("meta %s=%s is past Consul's limits", k, v)
		}
	}
	got, ok := ServedFrom(meta, "reviews", "stable")
	if !ok || got.Rejected != "big" || got.Version != "" {
		t.Errorf("reviews/stable: %+v %v", got, ok)
	}
	if _, ok := ServedFrom(meta, "reviews", "production"); ok {
		t.Error("reviews is followed on stable, not production")
	}
	legacy := map[string]string{MetaModel: "sentiment", MetaChannel: "production", MetaVersion: "v1"}
	if got, ok := ServedFrom(legacy, "sentiment", "production"); !ok || got.Version != "v1" {
		t.Errorf("an older edge's meta: %+v %v", got, ok)
	}
	garbled := map[string]string{"served_0": "{", "served_1": `{"model":"reviews","channel":"c"}`}
	if s := Served(garbled); len(s) != 1 || s[0].Model != "reviews" {
		t.Errorf("a garbled key is skipped, the next read: %+v", s)
	}
}
