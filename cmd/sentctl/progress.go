package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMode is the --progress flag: auto shows a bar only when stderr
// is a terminal, so logs and CI output stay clean.
type progressMode string

func (p *progressMode) String() string { return string(*p) }

func (p *progressMode) Set(s string) error {
	switch s {
	case "auto", "always", "never":
		*p = progressMode(s)
		return nil
	}
	return fmt.Errorf("want auto, always or never, got %q", s)
}

func (p progressMode) enabled(w io.Writer) bool {
	switch p {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a callback that drives a progress bar with rate and
// ETA, or nil when progress is off.
func newProgress(mode progressMode, w io.Writer, description, unit string) (func(done, total int), func()) {
	if !mode.enabled(w) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	last := 0
	update := func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(description),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString(unit),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30),
			)
		}
		if done-last >= 1000 || done == total {
			_ = bar.Add(done - last)
			last = done
		}
	}
	finish := func() {
		if bar != nil {
			_ = bar.Finish()
			fmt.Fprintln(w)
		}
	}
	return update, finish
}
