package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/model"
)

// sentctl runs the command in-process and returns its exit code and output.
func sentctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeTSV(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func corpus() string {
	var b strings.Builder
	b.WriteString("text\tlabel\n")
	pos := []string{"a great film", "wonderful acting", "truly moving", "brilliant and funny"}
	neg := []string{"an awful film", "boring acting", "truly dull", "a tedious mess"}
	for i := 0; i < 50; i++ {
		b.WriteString(pos[i%4] + "\t1\n" + neg[i%4] + "\t0\n")
	}
	return b.String()
}

func TestTrainEvalPredictSignVerify(t *testing.T) {
	dir := t.TempDir()
	data := writeTSV(t, dir, "train.tsv", corpus())
	art := filepath.Join(dir, "m.sapm")
	code, out, errOut := sentctl(t, "train", "--data", data, "--dev", data, "--out", art, "--bits", "12", "--progress", "never")
	if code != 0 || !strings.Contains(out, "accuracy: 1.0000") {
		t.Fatalf("train: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = sentctl(t, "eval", "--model", art, "--data", data)
	if code != 0 || !strings.Contains(out, "accuracy: 1.0000") || !strings.Contains(out, "confusion matrix") {
		t.Fatalf("eval: exit %d\n%s", code, out)
	}
	code, out, _ = sentctl(t, "predict", "--model", art, "--explain", "2", "a great film", "boring")
	if code != 0 || !strings.Contains(out, `"label":"positive"`) || !strings.Contains(out, `"label":"negative"`) || !strings.Contains(out, `"explain":[`) {
		t.Fatalf("predict: exit %d\n%s", code, out)
	}

	key := filepath.Join(dir, "ml-team")
	if code, out, errOut := sentctl(t, "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: exit %d %s%s", code, out, errOut)
	}
	if fi, _ := os.Stat(key + ".key"); fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", fi.Mode().Perm())
	}
	if code, _, errOut := sentctl(t, "keygen", "--out", key); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: exit %d %s", code, errOut)
	}
	if code, out, errOut := sentctl(t, "sign", "--key", key+".key", "--model", art); code != 0 {
		t.Fatalf("sign: exit %d %s%s", code, out, errOut)
	}
	if code, out, errOut := sentctl(t, "verify", "--pub", key+".pub", "--model", art); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("verify: exit %d %s%s", code, out, errOut)
	}
	other := filepath.Join(dir, "other")
	sentctl(t, "keygen", "--out", other)
	if code, _, errOut := sentctl(t, "verify", "--pub", other+".pub", "--model", art); code != 1 || !strings.Contains(errOut, "bad model signature") {
		t.Fatalf("verify with the wrong key: exit %d %s", code, errOut)
	}
	// A changed artifact no longer matches its signature (and its checksum).
	data2, _ := os.ReadFile(art)
	data2[100] ^= 1
	os.WriteFile(art, data2, 0o644)
	if code, _, errOut := sentctl(t, "verify", "--pub", key+".pub", "--model", art); code != 1 || !strings.Contains(errOut, "checksum") {
		t.Fatalf("verify a tampered artifact: exit %d %s", code, errOut)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeTSV(t, dir, "good.tsv", corpus())
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"train", "--out", "x"}, 2, "missing --data"},
		{[]string{"train", "--data", good, "--out", filepath.Join(dir, "o"), "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"train", "--data", good, "--out", filepath.Join(dir, "o"), "--holdout", "0.9"}, 2, "--holdout"},
		{[]string{"train", "--data", good, "--out", filepath.Join(dir, "o"), "--bits", "40"}, 1, "hash_bits 40"},
		{[]string{"train", "--data", good + ",holdout=0.7", "--out", filepath.Join(dir, "o")}, 2, "holdout must be a share from 0 to 0.5"},
		{[]string{"train", "--data", good + ",holdout=lots", "--out", filepath.Join(dir, "o")}, 2, "holdout must be a share"},
		{[]string{"train", "--data", good, "--out", filepath.Join(dir, "o"), "--lexicon", "afinn"}, 2, "--lexicon"},
		{[]string{"train", "--data", good, "--out", filepath.Join(dir, "o"), "--min-count", "-1"}, 1, "min count -1"},
		{[]string{"eval", "--data", ",holdout=0.2"}, 2, "no file"},
		{[]string{"eval", "--data", good + ",holdout=0"}, 1, "nothing to evaluate"},
		{[]string{"train", "--data", writeTSV(t, dir, "empty.tsv", ""), "--out", filepath.Join(dir, "o")}, 1, "empty file"},
		{[]string{"eval", "--data", writeTSV(t, dir, "nocol.tsv", "body\tlabel\nx\t1\n")}, 1, "no text column"},
		{[]string{"eval", "--data", writeTSV(t, dir, "badlabel.tsv", "text\tlabel\nx\tmaybe\n")}, 1, `unknown label "maybe"`},
		{[]string{"eval", "--data", filepath.Join(dir, "missing.tsv")}, 1, "no such file"},
		{[]string{"eval", "--model", good, "--data", good}, 1, "bad magic"},
		{[]string{"eval", "--data", good, "--labels", "onlyone"}, 2, "--labels"},
		{[]string{"sign", "--model", good}, 2, "missing --key"},
		// An empty --regions is a mistake, not "everywhere"; these fail
		// before any registry is asked.
		{[]string{"promote", "--model", "m", "--version", "v2", "--regions", ""}, 2, "names no region"},
		{[]string{"promote", "--model", "m", "--version", "v2", "--regions", " , ,"}, 2, "names no region"},
		{[]string{"rollback", "--model", "m", "--regions", ","}, 2, "names no region"},
	}
	for _, tc := range cases {
		code, _, errOut := sentctl(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.contains) {
			t.Errorf("sentctl %q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.contains)
		}
	}
}

func TestEvalUsesTheDefaultModel(t *testing.T) {
	data := writeTSV(t, t.TempDir(), "d.tsv", "text\tlabel\na wonderful , moving film\tpositive\na dull , tedious mess\tnegative\n")
	code, out, errOut := sentctl(t, "eval", "--data", data)
	if code != 0 || !strings.Contains(out, "model: default") || !strings.Contains(out, "accuracy: 1.0000") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	fs := newFlags("x", io.Discard)
	explain := fs.Int("explain", 0, "")
	quiet := fs.Bool("quiet", false, "")
	if err := parse(fs, []string{"great", "--explain", "2", "awful", "-quiet", "--", "--not-a-flag"}, true); err != nil {
		t.Fatal(err)
	}
	if *explain != 2 || !*quiet || strings.Join(fs.Args(), "|") != "great|awful|--not-a-flag" {
		t.Errorf("explain %d quiet %v args %q", *explain, *quiet, fs.Args())
	}
	fs = newFlags("x", io.Discard)
	fs.Int("explain", 0, "")
	if err := parse(fs, []string{"great", "--explain=x"}, true); err == nil {
		t.Error("a bad value was accepted")
	}
	if err := parse(newFlags("y", io.Discard), []string{"a", "--nope"}, true); err == nil {
		t.Error("an unknown flag after an argument was accepted")
	}
}

// TestTrainOnSeveralFiles: two files, one with a held-out share; the
// artifact records both, and eval scores exactly the held-out part.
func TestTrainOnSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeTSV(t, dir, "a.tsv", corpus())
	b := writeTSV(t, dir, "b.tsv", corpus())
	art := filepath.Join(dir, "m.sapm")
	code, out, errOut := sentctl(t, "train", "--data", a, "--data", b+",holdout=0.25", "--out", art, "--bits", "12",
		"--lexicon", "vader", "--nb-alpha", "1", "--min-count", "2", "--balance-classes", "--progress", "never")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, out, errOut)
	}
	heldLine := regexp.MustCompile(`b\.tsv: (\d+) examples for training, (\d+) held out`).FindStringSubmatch(out)
	if heldLine == nil || !strings.Contains(out, "held out of "+b+",holdout=0.25:") {
		t.Fatalf("train output:\n%s", out)
	}
	m, err := model.LoadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	tr := m.Meta().Training
	if len(tr.Data) != 2 || !strings.HasSuffix(tr.Data[1], ",holdout=0.25") || !strings.HasPrefix(tr.Lexicon, "vader:") ||
		tr.NBAlpha != 1 || tr.MinCount != 2 || !tr.BalanceClasses || m.Meta().Metrics == nil {
		t.Errorf("training record %+v, metrics %+v", tr, m.Meta().Metrics)
	}
	code, out, _ = sentctl(t, "eval", "--model", art, "--data", b+",holdout=0.25")
	if code != 0 || !strings.Contains(out, "("+heldLine[2]+" examples") || !strings.Contains(out, "ece: ") {
		t.Errorf("eval of the held-out part: exit %d\n%s", code, out)
	}
}
