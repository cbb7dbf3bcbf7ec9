package train

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var binaryLabels = DataOptions{Labels: [2]string{"negative", "positive"}}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if strings.HasSuffix(name, ".gz") {
		f, _ := os.Create(p)
		gz := gzip.NewWriter(f)
		gz.Write([]byte(content))
		gz.Close()
		f.Close()
		return p
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadDatasetFormats(t *testing.T) {
	f := func(name, content string, opts DataOptions, want ...Example) {
		t.Helper()
		ds, err := ReadDataset(writeFile(t, name, content), opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ds.Examples) != len(want) || !strings.HasPrefix(ds.Digest, "sha256:") {
			t.Fatalf("%s: %+v", name, ds)
		}
		for i := range want {
			if ds.Examples[i] != want[i] {
				t.Errorf("%s: example %d = %+v, want %+v", name, i, ds.Examples[i], want[i])
			}
		}
	}
	f("a.tsv", "text\tlabel\ngood film \t1\nbad\t0\n\n", binaryLabels, Example{"good film", 1}, Example{"bad", 0})
	f("sst.tsv", "sentence\tlabel\nok\tpositive\n", binaryLabels, Example{"ok", 1})
	f("imdb.tsv.gz", "id\trating\tlabel\ttext\nx/1\t9\t1\tGreat<br />film\n", binaryLabels, Example{"Great<br />film", 1})
	f("a.csv", "label,text\nneg,\"bad, really\"\nPOS,fine\n", binaryLabels, Example{"bad, really", 0}, Example{"fine", 1})
	f("a.jsonl", `{"text":"nice","label":1}`+"\n"+`{"text":"meh","label":"negative"}`+"\n", binaryLabels, Example{"nice", 1}, Example{"meh", 0})
	f("custom.tsv", "body\tsentiment\nhi\t1\n", DataOptions{TextColumn: "body", LabelColumn: "sentiment"}, Example{"hi", 1})
	f("data.txt", "text\tlabel\nhi\t0\n", DataOptions{Format: "tsv"}, Example{"hi", 0})
}

func TestReadDatasetErrors(t *testing.T) {
	f := func(name, content string, opts DataOptions, wantErr string) {
		t.Helper()
		_, err := ReadDataset(writeFile(t, name, content), opts)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s %q: err = %v, want it to mention %q", name, content, err, wantErr)
		}
	}
	f("empty.tsv", "", binaryLabels, "empty file")
	f("header-only.tsv", "text\tlabel\n", binaryLabels, "no examples")
	f("nolabel.tsv", "text\tscore\nx\t1\n", binaryLabels, `no label column "label"`)
	f("notext.tsv", "body\tlabel\nx\t1\n", binaryLabels, "no text column")
	f("named.tsv", "text\tlabel\nx\t1\n", DataOptions{TextColumn: "review_body"}, `no text column "review_body"`)
	f("badlabel.tsv", "text\tlabel\nx\t1\ny\tmaybe\n", binaryLabels, `line 3: unknown label "maybe"`)
	f("short.tsv", "text\tlabel\nonlytext\n", binaryLabels, "line 2: 1 fields")
	f("bad.jsonl", "{not json}\n", binaryLabels, "line 1")
	f("nolabel.jsonl", `{"text":"x"}`+"\n", binaryLabels, `no "label" field`)
	f("a.parquet", "x", binaryLabels, "unknown format")
	if _, err := ReadDataset(filepath.Join(t.TempDir(), "missing.tsv"), binaryLabels); err == nil {
		t.Error("missing file: no error")
	}
}
