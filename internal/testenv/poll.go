package testenv

import (
	"testing"
	"time"
)

// Eventually polls check until it returns nil and returns how long that
// took; past timeout it fails the test with what and check's last error.
// It polls every 10 ms at first, backing off to 50 ms (a recovery time
// it returns is that fine).
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	wait := 10 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Until is Eventually for a condition without a reason.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Eventually(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

type notYet struct{}

func (notYet) Error() string { return "the condition does not hold yet" }

var errNotYet error = notYet{}
