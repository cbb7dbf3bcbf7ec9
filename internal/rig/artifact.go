package rig

import (
	"fmt"
	"math/rand/v2"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/defaultmodel"
)

// LargeArtifact is a valid artifact of the built-in format with 2^bits
// buckets (4·2^bits bytes of weights: bits 24 is 64 MiB), its weights
// random from seed: a model with the default model's features and labels
// whose size, not its answers, is the point (the scale harness, download
// tests). Different seeds give different digests.
func LargeArtifact(bits int, seed uint64) ([]byte, error) {
	base, err := defaultmodel.Load()
	if err != nil {
		return nil, err
	}
	md := base.Meta()
	md.Name = fmt.Sprintf("large-%d-%d", bits, seed)
	md.Features.HashBits = bits
	md.Metrics = nil
	rng := rand.New(rand.NewPCG(seed, uint64(bits)))
	weights := make([]float32, 1<<bits)
	for i := range weights {
		weights[i] = float32(rng.NormFloat64() * 0.01)
	}
	m, err := model.New(md, weights, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot build a large artifact: %w", err)
	}
	return m.Encode()
}
