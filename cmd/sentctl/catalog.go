package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func init() {
	commands["models"] = command{summary: "list the registry's models", run: runModels}
	commands["versions"] = command{summary: "list a model's versions, oldest first (--label k=v filters)", run: runVersions}
	commands["show"] = command{summary: "show a version: metadata, metrics, signature, where channels point at it", run: runShow}
	commands["pull"] = command{summary: "download a version's artifact and verify its digest and signature", run: runPull}
	commands["channels"] = command{summary: "list a model's channels and their targets", run: runChannels}
	commands["edit"] = command{summary: "change a version's labels or description (audited)", run: runEdit}
	commands["delete"] = command{summary: "delete a version (admin; the name is never reused)", run: runDelete}
}

// readVerb parses the flags every read verb shares and returns a client.
func readVerb(name string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (*regclient.Client, string, error) {
	fs := newFlags(name, stderr)
	var rf registryFlags
	rf.register(fs)
	out := outputFlag(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args, false); err != nil {
		return nil, "", err
	}
	if err := checkOutput(*out); err != nil {
		return nil, "", err
	}
	client, err := rf.client()
	return client, *out, err
}

func runModels(args []string, stdout, stderr io.Writer) error {
	client, out, err := readVerb("models", args, stderr, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	names, err := client.ListModels(ctx)
	if err != nil {
		return err
	}
	return emit(stdout, out, nonNilList(names), func() {
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
	})
}

func runVersions(args []string, stdout, stderr io.Writer) error {
	var name string
	labels := labelFlags{}
	client, out, err := readVerb("versions", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "model", "", "model name (required)")
		fs.Var(labels, "label", "only versions with this label, key=value (repeatable)")
	})
	if err != nil {
		return err
	}
	if name == "" {
		return usageError{errors.New("missing --model")}
	}
	ctx := context.Background()
	all, err := client.ListVersions(ctx, name)
	if err != nil {
		return err
	}
	vs := []wire.Version{}
	for _, v := range all {
		if hasLabels(v, labels) {
			vs = append(vs, v)
		}
	}
	return emit(stdout, out, vs, func() {
		fmt.Fprintf(stdout, "%-20s %-20s %-9s %-10s %s\n", "VERSION", "CREATED", "ACCURACY", "SIGNED", "LABELS")
		for _, v := range vs {
			acc := "-"
			if a, ok := v.Accuracy(); ok {
				acc = fmt.Sprintf("%.4f", a)
			}
			signed := "no"
			if v.Signature != nil {
				signed = v.Signature.KeyID[:min(8, len(v.Signature.KeyID))]
			}
			fmt.Fprintf(stdout, "%-20s %-20s %-9s %-10s %s\n", v.Version, v.CreatedAt.Format(time.RFC3339), acc, signed, targets(v.Labels))
		}
	})
}

func hasLabels(v wire.Version, want labelFlags) bool {
	for k, val := range want {
		if v.Labels[k] != val {
			return false
		}
	}
	return true
}

// shown is what `show` prints: the version and where channels point at it.
type shown struct {
	wire.Version
	SignatureState string              `json:"signature_state"`
	PointedAtBy    []regclient.Pointer `json:"pointed_at_by"`
}

func runShow(args []string, stdout, stderr io.Writer) error {
	var name, version string
	client, out, err := readVerb("show", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "model", "", "model name (required)")
		fs.StringVar(&version, "version", "", "version (required)")
	})
	if err != nil {
		return err
	}
	if name == "" || version == "" {
		return usageError{errors.New("missing --model or --version")}
	}
	ctx := context.Background()
	v, err := client.GetVersion(ctx, name, version)
	if err != nil {
		return err
	}
	chans, err := client.ListChannels(ctx, name)
	if err != nil {
		return err
	}
	s := shown{Version: v, SignatureState: v.SignatureState(), PointedAtBy: regclient.PointersTo(chans, version)}
	return emit(stdout, out, s, func() {
		fmt.Fprintf(stdout, "%s/%s\n  digest     %s (%d bytes)\n  created    %s by %s\n  signature  %s\n", v.Model, v.Version,
			v.Digest, v.Size, v.CreatedAt.Format(time.RFC3339), v.Publisher, s.SignatureState)
		if m := v.Artifact.Metrics; m != nil {
			fmt.Fprintf(stdout, "  metrics    accuracy %.4f on %d examples (data %s)\n", m.Accuracy, m.Examples, m.DataDigest)
		} else {
			fmt.Fprintln(stdout, "  metrics    none recorded")
		}
		fmt.Fprintf(stdout, "  labels     %s\n", targets(v.Labels))
		if v.Description != "" {
			fmt.Fprintf(stdout, "  about      %s\n", v.Description)
		}
		if v.EditedBy != "" && v.EditedAt != nil {
			fmt.Fprintf(stdout, "  edited     %s by %s\n", v.EditedAt.Format(time.RFC3339), v.EditedBy)
		}
		if len(s.PointedAtBy) == 0 {
			fmt.Fprintln(stdout, "  served     by no channel")
		}
		for _, p := range s.PointedAtBy {
			where := "everywhere"
			if p.Scope != wire.GlobalScope {
				where = "in " + p.Scope
			}
			if p.Role == "candidate" {
				fmt.Fprintf(stdout, "  served     %s: candidate %s at %g%%\n", p.Channel, where, p.Percent)
			} else {
				fmt.Fprintf(stdout, "  served     %s: target %s\n", p.Channel, where)
			}
		}
	})
}

func runChannels(args []string, stdout, stderr io.Writer) error {
	var name string
	client, out, err := readVerb("channels", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "model", "", "model name (required)")
	})
	if err != nil {
		return err
	}
	if name == "" {
		return usageError{errors.New("missing --model")}
	}
	ctx := context.Background()
	chans, err := client.ListChannels(ctx, name)
	if err != nil {
		return err
	}
	return emit(stdout, out, nonNilList(chans), func() {
		for _, c := range chans {
			printChannel(stdout, c)
		}
	})
}

func runPull(args []string, stdout, stderr io.Writer) error {
	var name, version, dst, keys string
	fs := newFlags("pull", stderr)
	var rf registryFlags
	rf.registerTimeout(fs, 10*time.Minute)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&version, "version", "", "version (required)")
	fs.StringVar(&dst, "out", "", "file to write (default: MODEL-VERSION.sapm)")
	fs.StringVar(&keys, "trusted-keys", "", "PEM file of public keys: the signature must verify with one of them")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model", "version"); err != nil {
		return err
	}
	if dst == "" {
		dst = name + "-" + version + ".sapm"
	}
	var trusted []ed25519.PublicKey
	if keys != "" {
		data, err := os.ReadFile(keys)
		if err != nil {
			return usageError{fmt.Errorf("--trusted-keys: %w", err)}
		}
		if trusted, err = model.ParsePublicKeys(data); err != nil {
			return usageError{fmt.Errorf("--trusted-keys %s: %w", keys, err)}
		}
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	v, err := client.GetVersion(ctx, name, version)
	if err != nil {
		return err
	}
	if err := download(ctx, client, v, dst); err != nil {
		return err
	}
	state := v.SignatureState()
	switch {
	case len(trusted) > 0 && v.Signature == nil:
		os.Remove(dst)
		return fmt.Errorf("%s/%s is unsigned and --trusted-keys was given; removed %s", name, version, dst)
	case len(trusted) > 0:
		id, err := model.Verify(*v.Signature, v.Digest, trusted)
		if err != nil {
			os.Remove(dst)
			return fmt.Errorf("%s/%s: %w; removed %s", name, version, err, dst)
		}
		state = "signed by key " + id + ", verified with --trusted-keys"
	}
	fmt.Fprintf(stdout, "pulled %s/%s to %s: %s verified, %s\n", name, version, dst, v.Digest, state)
	return nil
}

// download writes the version's artifact to dst through a temporary file
// that becomes dst only when its digest matches.
func download(ctx context.Context, client *regclient.Client, v wire.Version, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".pull-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := client.Download(ctx, v.Digest, io.MultiWriter(tmp, h)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != v.Digest {
		return fmt.Errorf("downloaded bytes are %s, not the version's %s: nothing written", got, v.Digest)
	}
	return os.Rename(tmp.Name(), dst)
}

func runEdit(args []string, stdout, stderr io.Writer) error {
	var name, version, description string
	set := labelFlags{}
	var unset listFlag
	fs := newFlags("edit", stderr)
	var rf registryFlags
	rf.register(fs)
	out := outputFlag(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&version, "version", "", "version (required)")
	fs.Var(set, "label", "set a label, key=value (repeatable)")
	fs.Var(&unset, "unlabel", "remove a label by key (repeatable)")
	fs.StringVar(&description, "description", "", "new description")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model", "version"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	e := wire.VersionEdit{Labels: map[string]*string{}}
	for k, v := range set {
		e.Labels[k] = &v
	}
	for _, k := range unset {
		e.Labels[k] = nil
	}
	if flagGiven(fs, "description") {
		e.Description = &description
	}
	if len(e.Labels) == 0 && e.Description == nil {
		return usageError{errors.New("nothing to change: give --label, --unlabel or --description")}
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	v, err := client.EditVersion(ctx, name, version, e)
	if err != nil {
		return err
	}
	return emit(stdout, *out, v, func() {
		fmt.Fprintf(stdout, "edited %s/%s: labels %s\n", v.Model, v.Version, targets(v.Labels))
	})
}

func runDelete(args []string, stdout, stderr io.Writer) error {
	var name, version string
	fs := newFlags("delete", stderr)
	var rf registryFlags
	rf.register(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&version, "version", "", "version (required)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model", "version"); err != nil {
		return err
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	v, err := client.DeleteVersion(ctx, name, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %s/%s (%s); the name is never reused\n", v.Model, v.Version, v.Digest)
	return nil
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func nonNilList[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
