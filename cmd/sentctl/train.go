package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/train"
)

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	def := train.DefaultConfig()
	var (
		dev, out, name, desc, lexiconName string
		data                              dataSpecs
		holdout                           float64
		df                                dataFlags
		progress                          = progressMode("auto")
		cfg                               = def
	)
	fs.Var(&data, "data", "training data file, repeatable; FILE,holdout=0.2 keeps that share of it out of training (required)")
	fs.StringVar(&dev, "dev", "", "labelled file to evaluate on; its metrics go into the artifact (else the held-out parts')")
	fs.Float64Var(&holdout, "holdout", 0, "share (0..0.5) of each --data file that does not give its own kept out of training and evaluated")
	fs.StringVar(&out, "out", "", "artifact to write (required)")
	fs.StringVar(&name, "name", "sentiment", "model name recorded in the artifact")
	fs.StringVar(&desc, "description", "", "free-form description recorded in the artifact")
	fs.IntVar(&cfg.Features.HashBits, "bits", def.Features.HashBits, "hash table size as a power of two (8..24)")
	fs.IntVar(&cfg.Features.NGrams, "ngrams", def.Features.NGrams, "longest word n-gram (1..3)")
	fs.BoolVar(&cfg.Features.Negation, "negation", def.Features.Negation, "mark words after a negator")
	fs.StringVar(&cfg.Features.Norm, "norm", def.Features.Norm, "feature sum scaling: none (sentences) or sqrt (long reviews)")
	fs.IntVar(&cfg.Epochs, "epochs", def.Epochs, "passes over the data")
	fs.Float64Var(&cfg.LearningRate, "lr", def.LearningRate, "AdaGrad learning rate")
	fs.Float64Var(&cfg.L2, "l2", def.L2, "L2 penalty")
	fs.Float64Var(&cfg.NBAlpha, "nb-alpha", 0, "scale features by their naive-Bayes log-count ratio, smoothed by this (0: off)")
	fs.IntVar(&cfg.MinCount, "min-count", 0, "train only on features of at least this many examples (0: all)")
	fs.BoolVar(&cfg.BalanceClasses, "balance-classes", false, "weigh each example by the inverse of its label's share (even odds whatever the data's mix)")
	fs.StringVar(&lexiconName, "lexicon", "none", "sentiment lexicon whose words the data lacks get priors from: none or vader")
	fs.Uint64Var(&cfg.Seed, "seed", def.Seed, "shuffling seed")
	fs.Var(&progress, "progress", "progress bar: auto, always or never")
	df.register(fs)
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "data", "out"); err != nil {
		return err
	}
	if holdout < 0 || holdout > 0.5 {
		return usageError{fmt.Errorf("--holdout %g outside 0..0.5", holdout)}
	}
	opts, err := df.options()
	if err != nil {
		return err
	}
	if cfg.Lexicon, cfg.LexiconID, err = lexicon(lexiconName); err != nil {
		return err
	}
	var examples []train.Example
	var digests, parts []string
	var held []heldOut
	for _, spec := range data {
		ds, fit, h, err := spec.read(opts, holdout)
		if err != nil {
			return err
		}
		examples, digests = append(examples, fit...), append(digests, ds.Digest)
		parts = append(parts, fmt.Sprintf("%s,holdout=%g", ds.Digest, h.spec.holdout))
		if len(h.examples) > 0 {
			held = append(held, h)
		}
		fmt.Fprintf(stdout, "data: %s: %d examples for training, %d held out (%s)\n", spec.path, len(fit), len(h.examples), ds.Digest)
	}
	cfg.Name, cfg.Labels, cfg.DataDigest = name, opts.Labels, combinedDigest(digests)
	if len(parts) > 1 {
		cfg.DataParts = parts
	}
	update, finish := newProgress(progress, stderr, "training", "examples")
	start := time.Now()
	m, err := train.Fit(examples, cfg, update)
	finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained on %d examples in %s\n", len(examples), time.Since(start).Round(time.Millisecond))
	var metrics *model.Metrics
	for _, h := range held {
		fmt.Fprintf(stdout, "held out of %s:\n", h.spec)
		ev, err := train.Evaluate(m, h.examples, nil)
		if err != nil {
			return err
		}
		printEvaluation(stdout, ev)
		if metrics == nil && dev == "" && len(held) == 1 {
			metrics = ev.Metrics(cfg.DataDigest)
		}
	}
	if dev != "" {
		devDS, err := train.ReadDataset(dev, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dev %s:\n", dev)
		ev, err := train.Evaluate(m, devDS.Examples, nil)
		if err != nil {
			return err
		}
		printEvaluation(stdout, ev)
		metrics = ev.Metrics(devDS.Digest)
	}
	if metrics != nil {
		m = m.WithMetrics(metrics)
	}
	m = m.WithDescription(desc, holdout)
	encoded, err := m.Encode()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(out, encoded, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, %s)\n", out, len(encoded), model.Digest(encoded))
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so a reader never sees half an artifact.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write %q: %w", path, err)
	}
	return nil
}
