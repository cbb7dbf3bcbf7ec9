package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	alertsFile    = "prometheus/alerts.yml"
	alertTests    = "prometheus/alerts_test.yml"
	promConfig    = "prometheus/prometheus.yml"
	dashboardFile = "grafana/sentiment-dashboard.json"
)

// promtool runs promtool from Debian's prometheus package.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs promtool: skipped in -short mode")
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool not found: run `make tools` (it installs Debian's prometheus)")
	}
	out, err := exec.Command("promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules checks the rules and runs their unit tests: every alert
// must fire on the series meant to trip it and stay quiet otherwise.
func TestAlertRules(t *testing.T) {
	promtool(t, "check", "rules", alertsFile)
	promtool(t, "test", "rules", alertTests)
	promtool(t, "check", "config", promConfig)
}

// TestEveryAlertIsUnitTested keeps alerts_test.yml complete: an alert
// added without a test that makes it fire fails here.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rules, _ := os.ReadFile(alertsFile)
	tests, _ := os.ReadFile(alertTests)
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts found in " + alertsFile)
	}
	for _, a := range alerts {
		fires := regexp.MustCompile(`alertname: ` + a[1] + `\s+exp_alerts:\s+- exp_labels`)
		if !fires.Match(tests) {
			t.Errorf("alert %s has no test case in %s that expects it to fire", a[1], alertTests)
		}
	}
}

// dashboard is the part of the Grafana JSON the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardExprs returns every PromQL expression of the dashboard with
// Grafana's variables replaced by values PromQL accepts.
func dashboardExprs(d dashboard) map[string]string {
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$region", ".*")
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = vars.Replace(tg.Expr)
		}
	}
	return out
}

// TestDashboardQueries has promtool parse every query of the dashboard, by
// writing them into a throwaway rules file as recording rules: a typo in
// any panel fails here.
func TestDashboardQueries(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" {
		t.Error("dashboard has no uid")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	exprs := dashboardExprs(d)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range exprs {
			if !yield(k) {
				return
			}
		}
	})
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, k := range keys {
		if strings.TrimSpace(exprs[k]) == "" {
			t.Errorf("%s: empty query", k)
		}
		q, _ := json.Marshal(exprs[k]) // a JSON string is a valid YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
	t.Logf("%d dashboard queries parsed by promtool", len(keys))
}

// referencedMetrics returns the metric names the alert rules and the
// dashboard use, so the scrape test can check the services expose them.
func referencedMetrics(t *testing.T) []string {
	t.Helper()
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(rules)
	for _, e := range dashboardExprs(readDashboard(t)) {
		text += "\n" + e
	}
	names := regexp.MustCompile(`\b(?:edge|geo|registry|process|go)_[a-z_]+[a-z]\b`).FindAllString(text, -1)
	slices.Sort(names)
	return slices.Compact(names)
}
