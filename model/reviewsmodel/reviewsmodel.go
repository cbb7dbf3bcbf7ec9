// Package reviewsmodel embeds the example second model, "reviews": the
// default model's kind (hashed words, logistic regression) trained by
// `make model-reviews` on IMDB's long reviews alone, with 2^18 features
// (1 MiB). The local stack publishes it beside the default model to show
// an edge serving two models (docs/MODELS.md); tests use it as a second
// model of another size.
package reviewsmodel

import (
	_ "embed"
)

// Path is where the artifact lives in the repository.
const Path = "model/reviewsmodel/reviews.sapm"

//go:embed reviews.sapm
var artifact []byte

// Artifact returns the embedded artifact's bytes; callers must not modify them.
func Artifact() []byte { return artifact }
