package dir_test

import (
	"testing"

	"github.com/sentimentpro/sentiment/store"
	"github.com/sentimentpro/sentiment/store/dir"
	"github.com/sentimentpro/sentiment/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := dir.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.Options{})
}
