// Package defaultmodel embeds the default sentiment model, trained by
// `make model` with sentctl on SST-2 and IMDB (docs/MODEL.md), so every
// binary can serve and evaluate without a registry or any file on disk.
package defaultmodel

import (
	_ "embed"
	"sync"

	"github.com/sentimentpro/sentiment/model"
)

// Path is where the artifact lives in the repository.
const Path = "model/defaultmodel/default.sapm"

//go:embed default.sapm
var artifact []byte

var (
	once   sync.Once
	loaded *model.Model
	err    error
)

// Artifact returns the embedded artifact's bytes; callers must not modify them.
func Artifact() []byte { return artifact }

// Load returns the embedded model, loading and validating it once.
func Load() (*model.Model, error) {
	once.Do(func() { loaded, err = model.Load(artifact) })
	return loaded, err
}
