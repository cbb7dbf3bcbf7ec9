package main

import (
	"fmt"
	"io"

	"github.com/sentimentpro/sentiment/model/train"
)

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	var (
		modelPath, data string
		df              dataFlags
		progress        = progressMode("auto")
	)
	fs.StringVar(&modelPath, "model", "", "model artifact, ONNX bundle or bundle directory (default: the embedded default model)")
	onnxLib := fs.String("onnxruntime-lib", "", "ONNX Runtime's library, for an ONNX model (default: SENTCTL_ONNXRUNTIME_LIB, else where make onnxruntime leaves it)")
	fs.StringVar(&data, "data", "", "labelled data file (required); FILE,holdout=0.2 scores only the share sentctl train held out of it")
	fs.Var(&progress, "progress", "progress bar: auto, always or never")
	df.register(fs)
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "data"); err != nil {
		return err
	}
	a, err := readArtifact(modelPath)
	if err != nil {
		return err
	}
	if len(a.labels()) != 2 {
		return fmt.Errorf("eval reads two-label data; %s has %d labels", a.path, len(a.labels()))
	}
	m, closeModel, err := a.predictor(*onnxLib)
	if err != nil {
		return err
	}
	defer closeModel()
	opts, err := df.options()
	if err != nil {
		return err
	}
	// Label names given by the model win, so "positive" data matches it.
	opts.Labels = [2]string(m.Labels())
	spec, err := parseDataSpec(data)
	if err != nil {
		return err
	}
	ds, _, held, err := spec.read(opts, 0)
	if err != nil {
		return err
	}
	examples := ds.Examples
	if spec.holdout >= 0 {
		examples = held.examples
	}
	if len(examples) == 0 {
		return fmt.Errorf("%s: nothing to evaluate (a hold-out of %g keeps no examples)", spec, max(spec.holdout, 0))
	}
	fmt.Fprintf(stdout, "model: %s %s\n", a.name(), a.digest)
	fmt.Fprintf(stdout, "data: %s (%d examples, %s)\n", spec, len(examples), ds.Digest)
	update, finish := newProgress(progress, stderr, "evaluating", "texts")
	ev, err := train.Evaluate(m, examples, update)
	finish()
	if err != nil {
		return err
	}
	printEvaluation(stdout, ev)
	return nil
}

// printEvaluation prints accuracy, per-class figures and the confusion
// matrix. The "accuracy: 0.8412" line is stable for scripts.
func printEvaluation(w io.Writer, ev train.Evaluation) {
	fmt.Fprintf(w, "accuracy: %.4f\n", ev.Accuracy())
	fmt.Fprintf(w, "ece: %.4f (expected calibration error over 10 confidence bins; 0 is perfect)\n", ev.ECE())
	fmt.Fprintf(w, "%-12s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support")
	for c := range 2 {
		cm := ev.Class(c)
		fmt.Fprintf(w, "%-12s %9.4f %9.4f %9.4f %9d\n", cm.Label, cm.Precision, cm.Recall, cm.F1, cm.Support)
	}
	fmt.Fprintln(w, "confusion matrix (rows: true label, columns: predicted):")
	fmt.Fprintf(w, "%-12s %12s %12s\n", "", ev.Labels[0], ev.Labels[1])
	for c := range 2 {
		fmt.Fprintf(w, "%-12s %12d %12d\n", ev.Labels[c], ev.Confusion[c][0], ev.Confusion[c][1])
	}
}
