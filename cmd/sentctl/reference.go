package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
)

func init() {
	commands["completion"] = command{summary: "print a shell completion script: bash, zsh or fish", run: runCompletion,
		verbs: []string{"bash", "zsh", "fish"}}
}

// helpOf is what `sentctl NAME [VERB] -h` prints: the command's own flag
// definitions, so the reference and the completions cannot drift from
// them.
func helpOf(name, verb string) string {
	args := []string{"-h"}
	if verb != "" {
		args = []string{verb, "-h"}
	}
	var out bytes.Buffer
	commands[name].run(args, io.Discard, &out)
	return out.String()
}

var flagLine = regexp.MustCompile(`(?m)^  -(\S+)`)

// flagsOf lists the flags of a command, over all its verbs.
func flagsOf(name string) []string {
	verbs := commands[name].verbs
	if len(verbs) == 0 {
		verbs = []string{""}
	}
	var out []string
	for _, v := range verbs {
		for _, m := range flagLine.FindAllStringSubmatch(helpOf(name, v), -1) {
			if f := "--" + m[1]; len(m[1]) > 1 && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runCompletion is `sentctl completion bash|zsh|fish`.
func runCompletion(args []string, stdout, stderr io.Writer) error {
	if err := parse(newFlags("completion "+args[0], stderr), args[1:], false); err != nil {
		return err
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion())
	case "zsh":
		// zsh runs bash completions through bashcompinit.
		fmt.Fprint(stdout, "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion())
	case "fish":
		fmt.Fprint(stdout, fishCompletion())
	}
	return nil
}

func bashCompletion() string {
	var b strings.Builder
	b.WriteString("# sentctl completion for bash: source <(sentctl completion bash)\n_sentctl() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n")
	fmt.Fprintf(&b, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(commandNames(), " "))
	b.WriteString("  case \"$cmd\" in\n")
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "    %s)", n)
		if verbs := commands[n].verbs; len(verbs) > 0 {
			fmt.Fprintf(&b, " if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi;", strings.Join(verbs, " "))
		}
		fmt.Fprintf(&b, " COMPREPLY=($(compgen -W %q -- \"$cur\"));;\n", strings.Join(flagsOf(n), " "))
	}
	b.WriteString("  esac\n}\ncomplete -o default -F _sentctl sentctl\n")
	return b.String()
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# sentctl completion for fish: sentctl completion fish | source\n")
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "complete -c sentctl -n __fish_use_subcommand -f -a %s -d %q\n", n, commands[n].summary)
		for _, v := range commands[n].verbs {
			fmt.Fprintf(&b, "complete -c sentctl -n '__fish_seen_subcommand_from %s' -f -a %s\n", n, v)
		}
		for _, f := range flagsOf(n) {
			fmt.Fprintf(&b, "complete -c sentctl -n '__fish_seen_subcommand_from %s' -l %s\n", n, strings.TrimPrefix(f, "--"))
		}
	}
	return b.String()
}

// reference is docs/CLI.md: every command's summary and flags, from
// their definitions.
func reference() string {
	var b strings.Builder
	b.WriteString("# sentctl reference\n\n")
	b.WriteString("Generated from the command definitions by `go test ./cmd/sentctl -run TestCLIReference -update`; a test fails when it drifts.\n\n")
	b.WriteString("Flags may come before or after arguments. Registry commands read `SENTCTL_REGISTRY`, `SENTCTL_TOKEN`, `SENTCTL_CA`, `SENTCTL_CERT` and `SENTCTL_KEY`. Read commands take `-o table` (default) or `-o json`.\n\n")
	b.WriteString("## Exit status\n\n| status | meaning |\n|---|---|\n| 0 | done |\n")
	fmt.Fprintf(&b, "| %d | an error, or the registry refused |\n| %d | a bad command line |\n", exitFailed, exitUsage)
	fmt.Fprintf(&b, "| %d | `--wait` gave up (`--timeout`) before every edge served the target, or before the rollout ended |\n", exitNotConverged)
	fmt.Fprintf(&b, "| %d | the quality gate refused (or, with `--dry-run`, would refuse) a promote or a rollout |\n\n", exitGateRefused)
	b.WriteString("## Profiles\n\n")
	b.WriteString("A config file (`SENTCTL_CONFIG`, default `~/.config/sentctl/config.json`) names registries; `--profile` or `SENTCTL_PROFILE` picks one, else its `current`. A flag beats its `SENTCTL_*` variable, which beats the profile. Unknown keys are refused. A token file must be readable by its owner only (`chmod 600`), and a token is sent in clear text only to a registry on this machine (`http://127.0.0.1`, `http://localhost`): any other registry needs `https`, or `--allow-plain-http` to say you mean it.\n\n")
	b.WriteString("```json\n{\"current\": \"local\",\n \"profiles\": {\"local\": {\"registry\": \"http://127.0.0.1:8081\", \"token_file\": \"~/.sentctl/local.token\"},\n              \"prod\":  {\"registry\": \"https://r1:8081,https://r2:8081\", \"token_file\": \"~/.sentctl/prod.token\",\n                        \"ca\": \"~/.sentctl/ca.pem\", \"cert\": \"~/.sentctl/me.pem\", \"key\": \"~/.sentctl/me-key.pem\"}}}\n```\n\n")
	b.WriteString("Shell completion: `source <(sentctl completion bash)`, `source <(sentctl completion zsh)`, `sentctl completion fish | source`.\n\n")
	b.WriteString("## Commands\n\n")
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "- [`%s`](#sentctl-%s): %s\n", n, n, commands[n].summary)
	}
	for _, n := range commandNames() {
		fmt.Fprintf(&b, "\n## sentctl %s\n\n%s.\n", n, commands[n].summary)
		verbs := commands[n].verbs
		if len(verbs) == 0 {
			verbs = []string{""}
		}
		for _, v := range verbs {
			if v != "" {
				fmt.Fprintf(&b, "\n### sentctl %s %s\n", n, v)
			}
			help := strings.TrimRight(helpOf(n, v), "\n")
			if i := strings.IndexByte(help, '\n'); i >= 0 && strings.HasPrefix(help, "Usage of") {
				help = help[i+1:]
			} else if strings.HasPrefix(help, "Usage of") {
				help = "(no flags)"
			}
			if n == "completion" {
				help = "(no flags; prints the script)"
			}
			fmt.Fprintf(&b, "\n```\n%s\n```\n", help)
		}
	}
	return b.String()
}
