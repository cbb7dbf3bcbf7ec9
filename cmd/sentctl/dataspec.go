package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/jonreiter/govader"

	"github.com/sentimentpro/sentiment/model/train"
)

// dataSpec is a --data argument: a labelled file, and the share of it
// kept out of training and evaluated instead ("FILE,holdout=0.2").
type dataSpec struct {
	path    string
	holdout float64 // -1: not given
}

func parseDataSpec(s string) (dataSpec, error) {
	path, opt, hasOpt := strings.Cut(s, ",holdout=")
	spec := dataSpec{path: path, holdout: -1}
	if path == "" {
		return spec, usageError{fmt.Errorf("--data %q: no file", s)}
	}
	if hasOpt {
		share, err := strconv.ParseFloat(opt, 64)
		if err != nil || share < 0 || share > 0.5 {
			return spec, usageError{fmt.Errorf("--data %q: holdout must be a share from 0 to 0.5", s)}
		}
		spec.holdout = share
	}
	return spec, nil
}

// String is the spec as given.
func (d dataSpec) String() string {
	if d.holdout < 0 {
		return d.path
	}
	return fmt.Sprintf("%s,holdout=%g", d.path, d.holdout)
}

// heldOut is a file's held-out part.
type heldOut struct {
	spec     dataSpec
	examples []train.Example
}

// read reads the file and splits off the held-out share (share, when the
// spec gives none).
func (d dataSpec) read(opts train.DataOptions, share float64) (train.Dataset, []train.Example, heldOut, error) {
	ds, err := train.ReadDataset(d.path, opts)
	if err != nil {
		return ds, nil, heldOut{}, err
	}
	if d.holdout >= 0 {
		share = d.holdout
	}
	d.holdout = share
	fit, held := train.HoldOut(ds.Examples, share)
	return ds, fit, heldOut{spec: d, examples: held}, nil
}

// dataSpecs collects repeated --data flags.
type dataSpecs []dataSpec

func (l *dataSpecs) String() string {
	var s []string
	for _, d := range *l {
		s = append(s, d.String())
	}
	return strings.Join(s, " ")
}

func (l *dataSpecs) Set(s string) error {
	d, err := parseDataSpec(s)
	if err != nil {
		return err
	}
	*l = append(*l, d)
	return nil
}

// combinedDigest names several files' digests at once: the SHA-256 of
// their digests, one per line, in the order given (one file: its own).
func combinedDigest(digests []string) string {
	if len(digests) == 1 {
		return digests[0]
	}
	h := sha256.New()
	for _, d := range digests {
		fmt.Fprintln(h, d)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// lexicon returns the sentiment lexicon --lexicon names and its ID for
// the artifact: the lexicon's name, word count and a digest of its sorted
// entries, so a different lexicon cannot pass for this one.
func lexicon(name string) (map[string]float64, string, error) {
	switch name {
	case "", "none":
		return nil, "", nil
	case "vader":
		lex := govader.NewSentimentIntensityAnalyzer().Lexicon
		return lex, fmt.Sprintf("vader:%d:%s", len(lex), train.LexiconDigest(lex)), nil
	}
	return nil, "", usageError{fmt.Errorf("--lexicon %q: want none or vader", name)}
}
