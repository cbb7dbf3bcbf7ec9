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
	fs.StringVar(&modelPath, "model", "", "model artifact (default: the embedded default model)")
	fs.IntVar(&explain, "explain", 0, "also list the N features that moved each score most")
	if err := parse(fs, args, true); err != nil {
		return err
	}
	m, err := loadModel(modelPath)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	predict := func(text string) error {
		p := m.Classify(text)
		out := struct {
			Text    string                   `json:"text"`
			Label   string                   `json:"label"`
			Score   float32                  `json:"score"`
			Explain []inference.Contribution `json:"explain,omitempty"`
		}{text, p.Label, p.Score, m.Explain(text, explain)}
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
