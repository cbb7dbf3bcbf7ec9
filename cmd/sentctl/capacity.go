package main

import (
	"fmt"
	"io"

	"github.com/sentimentpro/sentiment/internal/capacity"
)

// runCapacity sizes a deployment from make bench's and make scale's
// figures: by default the ones committed with this build, or fresh ones
// (make capacity passes bin/bench.json and bin/scale.json).
func runCapacity(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("capacity", stderr)
	benchFile := fs.String("bench", "", "make bench's figures (bin/bench.json; default: those committed with this build)")
	scaleFile := fs.String("scale", "", "make scale's figures (bin/scale.json; default: those committed with this build)")
	var t capacity.Target
	fs.Float64Var(&t.RPS, "rps", 1e6, "peak requests/s, all regions together")
	fs.IntVar(&t.Regions, "regions", 10, "regions")
	fs.Float64Var(&t.ModelMiB, "model-mib", 250, "the model artifact's size in MiB")
	fs.Float64Var(&t.PromotesPerMonth, "promotes-per-month", 30, "promotes a month (rollbacks count)")
	fs.IntVar(&t.EdgeCores, "edge-cores", 0, "cores per edge (default: the bench machine's)")
	fs.Float64Var(&t.Utilisation, "utilisation", 0.6, "share of an edge's measured capacity used at peak, 0 to 1")
	fs.BoolVar(&t.SurviveRegion, "survive-region-loss", true, "size each region to take a lost region's share")
	fs.IntVar(&t.BlobSlots, "blob-slots", 4, "each edge's -blob-slots")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	b, s := capacity.Committed()
	if *benchFile != "" {
		if err := capacity.Load(*benchFile, &b); err != nil {
			return err
		}
	}
	if *scaleFile != "" {
		if err := capacity.Load(*scaleFile, &s); err != nil {
			return err
		}
	}
	lines, err := capacity.Plan(b, s, t)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "%.0f requests/s over %d regions, a %.0f MiB model, %.0f promotes a month\n\n", t.RPS, t.Regions, t.ModelMiB, t.PromotesPerMonth)
	capacity.Print(stdout, lines)
	return nil
}
