package backoff

import (
	"context"
	"net/http"
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

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-4", 0}, {"soon", 0}, {"99999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := RetryAfter(c.header, now, time.Hour); got != c.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}
