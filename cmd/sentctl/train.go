package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sentimentpro/sentiment/model"
)

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	def := model.DefaultTrainConfig()
	var (
		data, dev, out, name, desc string
		holdout                    float64
		df                         dataFlags
		progress                   = progressMode("auto")
		cfg                        = def
	)
	fs.StringVar(&data, "data", "", "training data file (required)")
	fs.StringVar(&dev, "dev", "", "labelled file to evaluate on; its metrics go into the artifact")
	fs.Float64Var(&holdout, "holdout", 0, "share of --data (0..0.5) kept out of training and evaluated instead of --dev")
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
	if holdout > 0 && dev != "" {
		return usageError{fmt.Errorf("--holdout and --dev are exclusive")}
	}
	opts, err := df.options()
	if err != nil {
		return err
	}
	ds, err := model.ReadDataset(data, opts)
	if err != nil {
		return err
	}
	examples, evalSet := ds.Examples, []model.Example(nil)
	evalDigest := ""
	if holdout > 0 {
		examples, evalSet = split(ds.Examples, holdout, cfg.Seed)
		evalDigest = ds.Digest
	}
	if dev != "" {
		devDS, err := model.ReadDataset(dev, opts)
		if err != nil {
			return err
		}
		evalSet, evalDigest = devDS.Examples, devDS.Digest
	}
	cfg.Name, cfg.Labels, cfg.DataDigest = name, opts.Labels, ds.Digest
	fmt.Fprintf(stdout, "training on %d examples from %s (%s)\n", len(examples), data, ds.Digest)
	update, finish := newProgress(progress, stderr, "training", "examples")
	start := time.Now()
	m, err := model.Train(examples, cfg, update)
	finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained in %s\n", time.Since(start).Round(time.Millisecond))
	if evalSet != nil {
		ev := model.Evaluate(m, evalSet, nil)
		printEvaluation(stdout, ev)
		m = m.WithMetrics(ev.Metrics(evalDigest))
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

// split shuffles a copy of examples with seed and keeps the first share
// of them out of training.
func split(examples []model.Example, share float64, seed uint64) (train, held []model.Example) {
	ex := append([]model.Example(nil), examples...)
	rand.New(rand.NewPCG(seed, 0x401d)).Shuffle(len(ex), func(i, j int) { ex[i], ex[j] = ex[j], ex[i] })
	n := int(float64(len(ex)) * share)
	return ex[n:], ex[:n]
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
