package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/registry/regclient"
	"github.com/sentimentpro/sentiment/registry/wire"
)

func init() {
	commands["publish"] = command{summary: "upload a model artifact as a new immutable version", run: runPublish}
	commands["promote"] = command{summary: "point a channel (everywhere or some regions) at a version", run: runPromote}
	commands["rollback"] = command{summary: "move a channel back to its previous (or a named) version", run: runRollback}
	commands["history"] = command{summary: "show a channel's moves, newest first", run: runHistory}
	commands["status"] = command{summary: "show what every edge serves against what the channel says", run: runStatus}
	commands["audit"] = command{summary: "query the registry's audit trail", run: runAudit}
}

// registryFlags are the connection flags every registry verb takes. The
// token comes from SENTCTL_TOKEN (or a profile's token file) so it never
// shows in a process list.
type registryFlags struct {
	url, ca, cert, key, profile string
	timeout                     time.Duration
	allowPlainHTTP              bool
}

// register adds the connection flags, with a 30 s timeout per call.
func (f *registryFlags) register(fs *flag.FlagSet) { f.registerTimeout(fs, 30*time.Second) }

// defaultRegistry is the local stack's registry (`make run`).
const defaultRegistry = "http://127.0.0.1:8081"

// registerTimeout adds the connection flags with another default
// timeout (uploads and downloads of large artifacts take longer).
func (f *registryFlags) registerTimeout(fs *flag.FlagSet, timeout time.Duration) {
	fs.DurationVar(&f.timeout, "timeout", timeout, "give up on a registry call after this long; with --wait, on the wait (exit 3)")
	fs.StringVar(&f.profile, "profile", "", "profile of the config file (or SENTCTL_PROFILE; default: its current one)")
	fs.StringVar(&f.url, "registry", "", "registry URL, or replicas separated by commas (or SENTCTL_REGISTRY, or the profile's; default "+defaultRegistry+"); the token is read from SENTCTL_TOKEN or the profile's token file")
	fs.StringVar(&f.ca, "ca", "", "CA file an https registry's certificate must chain to (or SENTCTL_CA, or the profile's; default: the system's)")
	fs.StringVar(&f.cert, "cert", "", "client certificate file for a registry that requires mutual TLS (or SENTCTL_CERT, or the profile's; with --key)")
	fs.StringVar(&f.key, "key", "", "client key file (or SENTCTL_KEY, or the profile's)")
	fs.BoolVar(&f.allowPlainHTTP, "allow-plain-http", false, "send the token over plain http to a registry that is not on this machine (refused by default: anyone on the path reads it)")
}

func (f *registryFlags) client() (*regclient.Client, error) {
	p, err := loadProfile(f.profile)
	if err != nil {
		return nil, err
	}
	pick := func(v, fromProfile, def string) string {
		if v != "" {
			return v
		}
		if fromProfile != "" {
			return fromProfile
		}
		return def
	}
	url, ca, cert, key := pick(f.url, p.Registry, defaultRegistry), pick(f.ca, p.CA, ""), pick(f.cert, p.Cert, ""), pick(f.key, p.Key, "")
	if (cert == "") != (key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	tlsCfg, err := tlsfiles.ClientConfig(ca, cert, key, nil)
	if err != nil {
		return nil, err
	}
	token, err := p.token()
	if err != nil {
		return nil, err
	}
	if err := checkTransport(url, token, f.allowPlainHTTP); err != nil {
		return nil, err
	}
	return &regclient.Client{BaseURL: url, Token: token, HTTP: tlsfiles.HTTPClient(tlsCfg, f.timeout)}, nil
}

// labelFlags collects repeated --label key=value flags.
type labelFlags map[string]string

func (l labelFlags) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labelFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	l[k] = v
	return nil
}

func runPublish(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", stderr)
	var (
		rf                                               registryFlags
		name, version, file, dir, sigFile, keyFile, desc string
		labels                                           = labelFlags{}
		progress                                         = progressMode("auto")
	)
	rf.register(fs)
	fs.StringVar(&name, "model", "", "model name, e.g. sst2 (required)")
	fs.StringVar(&version, "version", "", "new version name, e.g. v4 (required)")
	fs.StringVar(&file, "file", "", "artifact to publish: a model file or an ONNX bundle (sentctl pack)")
	fs.StringVar(&dir, "dir", "", "ONNX bundle directory to publish, as an ONNX export writes it (instead of --file)")
	fs.StringVar(&sigFile, "sig", "", "signature file (default: FILE.sig or DIR.sig when it exists)")
	fs.StringVar(&keyFile, "sign-key", "", "private key (sentctl keygen) to sign with, instead of --sig")
	fs.StringVar(&desc, "description", "", "free-form description")
	fs.Var(labels, "label", "key=value label (repeatable)")
	fs.Var(&progress, "progress", "upload progress bar: auto, always or never")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model", "version"); err != nil {
		return err
	}
	path := file
	if (file == "") == (dir == "") {
		return usageError{errors.New("give --file or --dir")}
	}
	if dir != "" {
		path = dir
	}
	// Checked here first, so a broken bundle is refused before any upload.
	a, err := readArtifact(path)
	if err != nil {
		return err
	}
	nv := wire.NewVersion{Digest: a.digest, Labels: labels, Description: desc}
	if nv.Signature, err = publishSignature(sigFile, keyFile, path, a.digest); err != nil {
		return err
	}
	var body io.Reader = bytes.NewReader(a.data)
	if progress.enabled(stderr) {
		body = io.TeeReader(body, progressbar.DefaultBytes(int64(len(a.data)), "uploading"))
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	v, err := client.Publish(context.Background(), name, version, body, int64(len(a.data)), nv)
	if err != nil {
		return err
	}
	acc := "no metrics"
	if a, ok := v.Accuracy(); ok {
		acc = fmt.Sprintf("accuracy %.4f", a)
	}
	format := "built-in format"
	if v.Artifact.Format != "" {
		format = v.Artifact.Format + fmt.Sprintf(", labels %s", strings.Join(v.Artifact.Labels, ","))
	}
	fmt.Fprintf(stdout, "published %s/%s: %s, %d bytes, %s, %s, %s\n", v.Model, v.Version, v.Digest, v.Size, format, acc, v.SignatureState())
	return nil
}

// publishSignature is the signature to publish with: made with keyFile,
// read from sigFile, or read from beside path if one is there.
func publishSignature(sigFile, keyFile, path, digest string) (*model.Signature, error) {
	if keyFile != "" {
		if sigFile != "" {
			return nil, usageError{errors.New("give --sig or --sign-key, not both")}
		}
		keyData, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read key: %w", err)
		}
		priv, err := model.ParsePrivateKey(keyData)
		if err != nil {
			return nil, err
		}
		sig, err := model.Sign(priv, digest)
		return &sig, err
	}
	sig, err := readSignature(sigFile, path)
	if err != nil || sig == nil {
		return sig, err
	}
	if sig.Digest != digest {
		return nil, fmt.Errorf("signature %s is for %s, not this artifact (%s)", sigPath(path), sig.Digest, digest)
	}
	return sig, nil
}

func readSignature(sigPath, file string) (*model.Signature, error) {
	explicit := sigPath != ""
	if !explicit {
		sigPath = filepath.Clean(file) + ".sig"
	}
	data, err := model.ReadFileLimited(sigPath, 64<<10)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read signature: %w", err)
	}
	sig, err := model.ParseSignature(data)
	if err != nil {
		return nil, err
	}
	return &sig, nil
}

// moveFlags are promote's and rollback's flags.
type moveFlags struct {
	rf                                      registryFlags
	name, channel, version, regions, reason string
	force                                   bool
	expect                                  int64
	wait                                    bool
}

func (m *moveFlags) register(fs *flag.FlagSet, versionHelp string) {
	m.rf.register(fs)
	fs.StringVar(&m.name, "model", "", "model name (required)")
	fs.StringVar(&m.channel, "channel", "production", "channel")
	fs.StringVar(&m.version, "version", "", versionHelp)
	fs.StringVar(&m.regions, "regions", "", "comma-separated regions (left out: everywhere; given, it must name one)")
	fs.StringVar(&m.reason, "reason", "", "why, for the audit trail")
	fs.BoolVar(&m.force, "force", false, "override the quality gate (admins only; audited)")
	fs.Int64Var(&m.expect, "expect-revision", -1, "move only if the channel is still at this revision")
	fs.BoolVar(&m.wait, "wait", false, "wait until every edge serves its region's target (exit 3 if --timeout passes first)")
}

// checkRegions refuses a --regions that is given but names no region.
// Left out, a move is everywhere; an empty variable in a script must not
// turn a one-region promote into a global one.
func (m *moveFlags) checkRegions(fs *flag.FlagSet) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "regions" })
	if given && len(config.List(m.regions)) == 0 {
		return usageError{fmt.Errorf("--regions %q names no region (leave it out to move the channel everywhere)", m.regions)}
	}
	return nil
}

func (m *moveFlags) request() wire.MoveRequest {
	req := wire.MoveRequest{Version: m.version, Regions: config.List(m.regions), Force: m.force, Reason: m.reason}
	if m.expect >= 0 {
		rev := uint64(m.expect)
		req.ExpectRevision = &rev
	}
	return req
}

func printChannel(w io.Writer, c wire.Channel) {
	fmt.Fprintf(w, "%s/%s revision %d: global=%s", c.Model, c.Channel, c.Revision, orDash(c.Global))
	for _, r := range sortedKeys(c.Regions) {
		fmt.Fprintf(w, " %s=%s", r, c.Regions[r])
	}
	fmt.Fprintln(w)
}

func runPromote(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("promote", stderr)
	var m moveFlags
	m.register(fs, "version to promote (required)")
	var dryRun bool
	fs.BoolVar(&dryRun, "dry-run", false, "print the quality gate's verdict and what would change in each region; change nothing")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model", "version"); err != nil {
		return err
	}
	if err := m.checkRegions(fs); err != nil {
		return err
	}
	client, err := m.rf.client()
	if err != nil {
		return err
	}
	if dryRun {
		return printDryRun(client, m, stdout)
	}
	c, err := client.Promote(context.Background(), m.name, m.channel, m.request())
	if err != nil {
		return err
	}
	printChannel(stdout, c)
	return m.waitConverged(client, c.Revision, stdout)
}

// printDryRun shows what a promote would do.
func printDryRun(client *regclient.Client, m moveFlags, stdout io.Writer) error {
	out, err := client.DryRunPromote(context.Background(), m.name, m.channel, m.request())
	if err != nil {
		return err
	}
	acc := func(a *float64) string {
		if a == nil {
			return "no accuracy recorded"
		}
		return fmt.Sprintf("accuracy %.4f", *a)
	}
	fmt.Fprintf(stdout, "dry run: promote %s/%s to %s (revision %d); nothing changed\n", m.name, m.version, m.channel, out.Revision)
	fmt.Fprintf(stdout, "  candidate %s: %s\n", out.Candidate.Version, acc(out.Candidate.Accuracy))
	for _, r := range out.Replaced {
		diff := ""
		if r.Accuracy != nil && out.Candidate.Accuracy != nil {
			diff = fmt.Sprintf(" (candidate %+.4f)", *out.Candidate.Accuracy-*r.Accuracy)
		}
		fmt.Fprintf(stdout, "  served    %s: %s%s\n", r.Version, acc(r.Accuracy), diff)
	}
	fmt.Fprintf(stdout, "  gate      %s\n", out.Gate)
	scopes := sortedKeys(out.Before)
	for _, k := range sortedKeys(out.After) {
		if _, ok := out.Before[k]; !ok {
			scopes = append(scopes, k)
		}
	}
	for _, k := range scopes {
		if out.Before[k] != out.After[k] {
			fmt.Fprintf(stdout, "  %-9s %s -> %s\n", k, orDash(out.Before[k]), orDash(out.After[k]))
		}
	}
	if strings.HasPrefix(out.Gate, "refused") {
		return exitError{code: exitGateRefused, err: errors.New("the quality gate would refuse this promote")}
	}
	return nil
}

// waitConverged polls status until every edge serves its region's
// target at revision rev or later, for as long as --timeout allows.
func (m moveFlags) waitConverged(client *regclient.Client, rev uint64, stdout io.Writer) error {
	if !m.wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.rf.timeout)
	defer cancel()
	path := "/v1/admin/models/" + url.PathEscape(m.name) + "/status?channel=" + url.QueryEscape(m.channel)
	var last string
	for {
		var st wire.Status
		err := client.Raw(ctx, "GET", path, nil, &st)
		if err == nil && st.Converged && st.Revision >= rev {
			fmt.Fprintf(stdout, "converged: every edge serves revision %d's targets\n", st.Revision)
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = lagging(st)
		}
		select {
		case <-ctx.Done():
			return exitError{code: exitNotConverged, err: fmt.Errorf("not converged within %v: %s", m.rf.timeout, last)}
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func runRollback(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rollback", stderr)
	var m moveFlags
	m.register(fs, "version to roll back to (default: the previous one)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model"); err != nil {
		return err
	}
	if err := m.checkRegions(fs); err != nil {
		return err
	}
	client, err := m.rf.client()
	if err != nil {
		return err
	}
	c, err := client.Rollback(context.Background(), m.name, m.channel, m.request())
	if err != nil {
		return err
	}
	printChannel(stdout, c)
	return m.waitConverged(client, c.Revision, stdout)
}

func runHistory(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("history", stderr)
	var (
		rf            registryFlags
		name, channel string
		limit         int
	)
	rf.register(fs)
	out := outputFlag(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&channel, "channel", "production", "channel")
	fs.IntVar(&limit, "limit", 20, "revisions to show")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	client, err := rf.client()
	if err != nil {
		return err
	}
	hist, err := client.History(context.Background(), name, channel, limit)
	if err != nil {
		return err
	}
	return emit(stdout, *out, nonNilList(hist), func() { printHistory(stdout, hist) })
}

func printHistory(stdout io.Writer, hist []wire.Channel) {
	for _, c := range hist {
		scope := "global"
		if len(c.Change.Regions) > 0 {
			scope = strings.Join(c.Change.Regions, ",")
		}
		forced := ""
		if c.Change.Forced {
			forced = " FORCED"
		}
		fmt.Fprintf(stdout, "%4d  %s  %-8s %-14s by %-10s %s -> %s%s  %s\n", c.Revision, c.UpdatedAt.Format(time.RFC3339),
			c.Change.Action, scope, c.Change.Actor, targets(c.Change.Before), targets(c.Change.After), forced, c.Change.Reason)
	}
}

// lagging names the edges that do not serve their region's target yet.
func lagging(st wire.Status) string {
	var out []string
	for _, r := range st.Regions {
		for _, in := range r.Instances {
			if !in.Current {
				out = append(out, fmt.Sprintf("%s serves %s, not %s", in.ID, orDash(in.Version), r.Expected))
			}
		}
	}
	if len(out) == 0 {
		return "status is at revision " + fmt.Sprint(st.Revision)
	}
	return strings.Join(out, "; ")
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	var (
		rf            registryFlags
		name, channel string
	)
	rf.register(fs)
	out := outputFlag(fs)
	fs.StringVar(&name, "model", "", "model name (required)")
	fs.StringVar(&channel, "channel", "production", "channel")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "model"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	var st wire.Status
	path := "/v1/admin/models/" + url.PathEscape(name) + "/status?channel=" + url.QueryEscape(channel)
	client, err := rf.client()
	if err != nil {
		return err
	}
	if err := client.Raw(context.Background(), "GET", path, nil, &st); err != nil {
		return err
	}
	return emit(stdout, *out, st, func() { printStatus(stdout, name, channel, st) })
}

func printStatus(stdout io.Writer, name, channel string, st wire.Status) {
	fmt.Fprintf(stdout, "%s/%s revision %d: converged=%v\n", name, channel, st.Revision, st.Converged)
	for _, r := range st.Regions {
		fmt.Fprintf(stdout, "  %-12s (%s) expects %-10s converged=%v\n", r.Region, r.Datacenter, r.Expected, r.Converged)
		for _, in := range r.Instances {
			fmt.Fprintf(stdout, "      %-28s %-21s %-9s serves %s\n", in.ID, in.Address, in.Health, in.Version)
		}
	}
	for _, e := range st.Errors {
		fmt.Fprintln(stdout, "  error:", e)
	}
}

func runAudit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", stderr)
	var (
		rf                                              registryFlags
		name, channel, actor, action, since, until, out string
		limit                                           int
	)
	rf.register(fs)
	fs.StringVar(&name, "model", "", "only this model")
	fs.StringVar(&channel, "channel", "", "only this channel")
	fs.StringVar(&actor, "actor", "", "only this actor")
	fs.StringVar(&action, "action", "", "only this action (publish, promote, rollback, delete, auth_denied)")
	fs.StringVar(&since, "since", "", "from (RFC 3339, or a duration back from now such as 24h; default 7 days)")
	fs.StringVar(&until, "until", "", "until (RFC 3339 or a duration back from now)")
	fs.IntVar(&limit, "limit", 100, "entries to show")
	output := outputFlag(fs)
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	out = *output
	q := url.Values{}
	for k, v := range map[string]string{"model": name, "channel": channel, "actor": actor, "action": action, "since": since, "until": until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", fmt.Sprint(limit))
	client, err := rf.client()
	if err != nil {
		return err
	}
	entries, err := client.Audit(context.Background(), q)
	if err != nil {
		return err
	}
	return emit(stdout, out, nonNilList(entries), func() { printAudit(stdout, entries) })
}

func printAudit(stdout io.Writer, entries []wire.AuditEntry) {
	for _, e := range entries {
		what := strings.Trim(e.Model+"/"+e.Version+" "+e.Channel, "/ ")
		fmt.Fprintf(stdout, "%s  %-12s %-8s %-10s %s %s -> %s %s\n", e.Time.Format(time.RFC3339), e.Action, e.Result,
			orDash(e.Actor), what, targets(e.Before), targets(e.After), e.Detail)
	}
}

func targets(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
