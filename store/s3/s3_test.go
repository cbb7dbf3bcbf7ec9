package s3_test

import (
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/storetest"
)

// TestConformance runs the store suite against a real S3 server (versitygw).
func TestConformance(t *testing.T) {
	srv := testenv.S3(t)
	storetest.Run(t, func(t *testing.T) store.Store { return testenv.NewStore(t, srv) }, storetest.Options{})
}
