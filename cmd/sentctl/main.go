// Command sentctl is the command line of Sentiment Analyzer Pro: train,
// evaluate and try models, manage signing keys, and (with a registry)
// publish, promote and roll back model versions.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/registry/regclient"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// command is one sentctl verb.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
	verbs   []string // the first argument it takes, if it has verbs
}

var commands = map[string]command{
	"train":     {summary: "train a model from labelled text", run: runTrain},
	"eval":      {summary: "evaluate a model on labelled text", run: runEval},
	"predict":   {summary: "classify texts (arguments, or one per line on stdin)", run: runPredict},
	"keygen":    {summary: "create an ed25519 signing key pair", run: runKeygen},
	"pack":      {summary: "pack an ONNX export's directory into one bundle file", run: runPack},
	"sign":      {summary: "sign a model artifact or ONNX bundle", run: runSign},
	"verify":    {summary: "verify a model artifact's signature", run: runVerify},
	"dns-query": {summary: "create Consul prepared queries for DNS clients, with cross-region failover", run: runDNSQuery},
	"smoke":     {summary: "check a deployment end to end through its public endpoint", run: runSmoke},
	"capacity":  {summary: "size a deployment (edges, registry, Consul, S3, egress) from make bench's and make scale's figures", run: runCapacity},
	"version":   {summary: "print the version", run: runVersion},
}

// Exit statuses (docs/CLI.md).
const (
	exitFailed       = 1 // an error, or the registry refused
	exitUsage        = 2 // a bad command line
	exitNotConverged = 3 // --wait gave up before every edge served the target
	exitGateRefused  = 4 // the quality gate refused (or would refuse) a promote or rollout
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// exitCode is the status err calls for.
func exitCode(err error) int {
	var ee exitError
	var api *regclient.APIError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, new(usageError)):
		return exitUsage
	case errors.As(err, &api) && api.Status == 409 && strings.Contains(api.Message, "quality gate refused"):
		return exitGateRefused
	}
	return exitFailed
}

// usageError marks a bad command line: exit status 2 instead of 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sentctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if len(cmd.verbs) > 0 && (len(args) < 2 || !slices.Contains(cmd.verbs, args[1])) {
		if len(args) >= 2 && !strings.HasPrefix(args[1], "-") && args[1] != "help" {
			fmt.Fprintf(stderr, "sentctl %s: unknown verb %q\n", args[0], args[1])
		}
		fmt.Fprintf(stderr, "usage: sentctl %s %s [flags]\nRun 'sentctl %s <verb> -h' for a verb's flags.\n", args[0], strings.Join(cmd.verbs, "|"), args[0])
		if len(args) >= 2 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help") {
			return 0
		}
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "sentctl %s: %v\n", args[0], err)
		return exitCode(err)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sentctl <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sentctl <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sentctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and turns flag errors into usage errors; positional
// arguments are refused unless allowArgs.
//
// Flags may come after arguments (`predict "great" --explain 2`): they
// are moved in front of them first. "--" ends the flags.
func parse(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(flagsFirst(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if !allowArgs && fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if err := config.ApplyEnvOf(fs, "SENTCTL", envFlags); err != nil {
		return usageError{err}
	}
	return nil
}

// envFlags are the flags SENTCTL_<NAME> sets when the command line does
// not: where and how to connect, never what to do.
var envFlags = map[string]bool{"profile": true, "registry": true, "ca": true, "cert": true, "key": true}

// flagsFirst reorders args so that every flag of fs (with its value)
// comes before the arguments, which keep their order after a "--".
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, _, inline := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		flags = append(flags, a)
		f := fs.Lookup(name)
		if f == nil || inline {
			continue // an unknown flag: Parse says so
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(rest) == 0 {
		return flags
	}
	return append(append(flags, "--"), rest...)
}

// required checks that the named string flags were given.
func required(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("missing %s", strings.Join(missing, ", "))}
	}
	return nil
}

// outputFlag adds -o and --output (table or json) to a read verb.
func outputFlag(fs *flag.FlagSet) *string {
	out := new(string)
	fs.StringVar(out, "o", "table", "output: table or json")
	fs.StringVar(out, "output", "table", "output: table or json (same as -o)")
	return out
}

// checkOutput refuses an -o value other than table or json.
func checkOutput(out string) error {
	if out != "table" && out != "json" && out != "text" {
		return usageError{fmt.Errorf("-o %q: want table or json", out)}
	}
	return nil
}

// emit prints v as indented JSON, or calls table.
func emit(w io.Writer, out string, v any, table func()) error {
	if out == "json" {
		return printJSON(w, v)
	}
	table()
	return nil
}

// flagGiven reports whether name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("version", stderr), args, false); err != nil {
		return err
	}
	fmt.Fprintln(stdout, Version)
	return nil
}
