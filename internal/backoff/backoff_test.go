package backoff

import (
	"context"
	"testing"
	"time"
)

// TestNextDoublesToTheCap: First, then doubling, never past Max plus its
// quarter of jitter, and First again after Reset.
func TestNextDoublesToTheCap(t *testing.T) {
	b := Backoff{First: 100 * time.Millisecond, Max: time.Second}
	for i, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		if got := b.Next(); got < base || got > base+base/4 {
			t.Errorf("wait %d: %v, want %v to %v", i+1, got, base, base+base/4)
		}
	}
	b.Reset()
	if got := b.Next(); got < 100*time.Millisecond || got > 125*time.Millisecond {
		t.Errorf("after Reset: %v, want First", got)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep of an hour on a cancelled context reported the whole wait")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("a millisecond's Sleep did not pass")
	}
}
