package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"

	"github.com/sentimentpro/sentiment/inference"
	"github.com/sentimentpro/sentiment/model/train"
)

func runPredict(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", stderr)
	var (
		modelPath string
		explain   int
	)
	fs.StringVar(&modelPath, "model", "", "model artifact, ONNX bundle or bundle directory (default: the embedded default model)")
	fs.IntVar(&explain, "explain", 0, "also list the N features that moved each score most (built-in models)")
	onnxLib := fs.String("onnxruntime-lib", "", "ONNX Runtime's library, for an ONNX model (default: SENTCTL_ONNXRUNTIME_LIB, else where make onnxruntime leaves it)")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	a, err := readArtifact(modelPath)
	if err != nil {
		return err
	}
	m, closeModel, err := a.predictor(*onnxLib)
	if err != nil {
		return err
	}
	defer closeModel()
	labels := m.Labels()
	probs := make([]float32, len(labels))
	enc := json.NewEncoder(stdout)
	predict := func(text string) error {
		if err := m.Predict([]string{text}, probs); err != nil {
			return err
		}
		best := inference.ArgMax(probs)
		out := struct {
			Text          string                   `json:"text"`
			Label         string                   `json:"label"`
			Score         float32                  `json:"score"`
			Probabilities map[string]float32       `json:"probabilities"`
			Explain       []inference.Contribution `json:"explain,omitempty"`
		}{Text: text, Label: labels[best], Score: probs[best], Probabilities: map[string]float32{}}
		for i, l := range labels {
			out.Probabilities[l] = probs[i]
		}
		if e, ok := m.(inference.Explainer); ok && explain > 0 {
			out.Explain = e.Explain(text, explain)
		}
		return enc.Encode(out)
	}
	if fs.NArg() > 0 {
		for _, text := range fs.Args() {
			if err := predict(text); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), train.MaxLineSize)
	for sc.Scan() {
		if err := predict(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}
