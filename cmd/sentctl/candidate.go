package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/sentimentpro/sentiment/registry/wire"
)

func init() {
	commands["candidate"] = command{summary: "put a version beside a region's target for a share of its traffic (set), or end it (clear)", run: runCandidate, verbs: []string{"set", "clear"}}
}

// runCandidate is `sentctl candidate set|clear`: the manual form of a
// staged rollout step.
func runCandidate(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "set" && args[0] != "clear") {
		return errors.New("usage: sentctl candidate set|clear --model M --region R [--version V --percent P --shadow S]")
	}
	verb := args[0]
	fs := newFlags("candidate "+verb, stderr)
	var (
		rf                                  registryFlags
		name, channel, region, version, why string
		percent, shadow                     float64
	)
	rf.register(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&channel, "channel", "production", "channel")
	fs.StringVar(&region, "region", "", "region (required)")
	fs.StringVar(&version, "version", "", "candidate version (set: required)")
	fs.Float64Var(&percent, "percent", 0, "share of the region's requests the candidate answers, 0 to 100")
	fs.Float64Var(&shadow, "shadow", 0, "share of the other requests it scores in the shadow, 0 to 1")
	fs.StringVar(&why, "reason", "", "why, for the audit trail")
	if err := parse(fs, args[1:], false); err != nil {
		return err
	}
	need := []string{"model", "region"}
	if verb == "set" {
		need = append(need, "version")
	}
	if err := required(fs, need...); err != nil {
		return err
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	var c wire.Channel
	if verb == "set" {
		c, err = client.SetCandidate(context.Background(), name, channel, region,
			wire.CandidateRequest{Candidate: wire.Candidate{Version: version, Percent: percent, Shadow: shadow}, Reason: why})
	} else {
		c, err = client.ClearCandidate(context.Background(), name, channel, region)
	}
	if err != nil {
		return err
	}
	printChannel(stdout, c)
	for _, r := range slices.Sorted(maps.Keys(c.Candidates)) {
		cand := c.Candidates[r]
		fmt.Fprintf(stdout, "  candidate %s: %s answers %g%%, shadow %g\n", r, cand.Version, cand.Percent, cand.Shadow)
	}
	return nil
}
