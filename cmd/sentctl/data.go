package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/sentimentpro/sentiment/model/train"
)

// dataFlags are the flags that say how to read a labelled data file.
type dataFlags struct {
	format, textCol, labelCol, labels string
}

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.format, "format", "", "data format: tsv, csv or jsonl (default: from the file extension; .gz is decompressed)")
	fs.StringVar(&d.textCol, "text-col", "", "text column (default: text, sentence or review)")
	fs.StringVar(&d.labelCol, "label-col", "label", "label column")
	fs.StringVar(&d.labels, "labels", "negative,positive", "names of labels 0 and 1")
}

func (d *dataFlags) options() (train.DataOptions, error) {
	names := strings.Split(d.labels, ",")
	if len(names) != 2 || strings.TrimSpace(names[0]) == "" || strings.TrimSpace(names[1]) == "" {
		return train.DataOptions{}, usageError{fmt.Errorf("--labels %q: want two comma-separated names", d.labels)}
	}
	return train.DataOptions{
		Format: d.format, TextColumn: d.textCol, LabelColumn: d.labelCol,
		Labels: [2]string{strings.TrimSpace(names[0]), strings.TrimSpace(names[1])},
	}, nil
}
