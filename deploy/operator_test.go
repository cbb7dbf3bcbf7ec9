package deploy

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite generated files (the PrometheusRule) from their sources")

const (
	prometheusRuleFile = "prometheus-operator/prometheusrule.yaml"
	serviceMonitorFile = "prometheus-operator/servicemonitors.yaml"
)

const ruleHeader = `# Generated from prometheus/alerts.yml by
#   go test ./deploy -run TestPrometheusRule -update
# Do not edit: change alerts.yml (promtool checks and unit-tests it).
`

// TestPrometheusRule keeps the Prometheus Operator variant of the alert
// rules identical to alerts.yml, which promtool checks and tests.
func TestPrometheusRule(t *testing.T) {
	var rules map[string]any
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{"name": "sentiment-alerts", "namespace": "sentiment",
			"labels": map[string]any{"app.kubernetes.io/part-of": "sentiment-analyzer-pro"}},
		"spec": map[string]any{"groups": rules["groups"]},
	}
	if *update {
		out, err := yaml.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(prometheusRuleFile, append([]byte(ruleHeader), out...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err = os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	// Round-trip want through YAML, so both sides have the same types.
	out, _ := yaml.Marshal(want)
	var wantRT map[string]any
	yaml.Unmarshal(out, &wantRT)
	if !reflect.DeepEqual(got, wantRT) {
		t.Errorf("%s differs from %s: run go test ./deploy -run TestPrometheusRule -update", prometheusRuleFile, alertsFile)
	}
}

// TestServiceMonitors: one per service, named like the jobs the rules and
// the dashboard use, scraping the Services' https port; edges and the
// registry with the client certificate mutual TLS asks for, the geo
// routers with the internal token.
func TestServiceMonitors(t *testing.T) {
	data, err := os.ReadFile(serviceMonitorFile)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var sm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string
			Metadata   struct {
				Name, Namespace string
				Labels          map[string]string
			}
			Spec struct {
				JobLabel string `json:"jobLabel"`
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				}
				Endpoints []struct {
					Port, Scheme, Path, Interval string
					TLSConfig                    map[string]any `json:"tlsConfig"`
					Authorization                map[string]any
					Relabelings                  []map[string]any
				}
			}
		}
		if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
			t.Fatalf("%s: %v", serviceMonitorFile, err)
		}
		name := sm.Metadata.Name
		seen[name] = true
		if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" || sm.Metadata.Namespace != "sentiment" ||
			sm.Spec.JobLabel != "app.kubernetes.io/name" || sm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name || len(sm.Spec.Endpoints) != 1 {
			t.Errorf("%s: %+v", name, sm)
			continue
		}
		ep := sm.Spec.Endpoints[0]
		if ep.Port != "https" || ep.Scheme != "https" || ep.Path != "/metrics" {
			t.Errorf("%s scrapes %s %s %s", name, ep.Port, ep.Scheme, ep.Path)
		}
		region := len(ep.Relabelings) > 0 && ep.Relabelings[0]["targetLabel"] == "region"
		if name == "sentiment-geo" {
			if ep.Authorization == nil || region {
				t.Errorf("%s: needs the internal token and no region label", name)
			}
		} else if ep.TLSConfig["cert"] == nil || ep.TLSConfig["keySecret"] == nil || !region {
			t.Errorf("%s: needs a client certificate and the region label", name)
		}
	}
	for _, name := range []string{"sentiment-edge", "sentiment-registry", "sentiment-geo"} {
		if !seen[name] {
			t.Errorf("no ServiceMonitor for %s", name)
		}
	}
	// The Services expose the port they scrape.
	for _, f := range []string{"edge", "registry", "geo"} {
		svc, _ := os.ReadFile("../manifests/base/" + f + ".yaml")
		if !strings.Contains(string(svc), "{name: https, port:") {
			t.Errorf("manifests/base/%s.yaml: the Service has no port named https", f)
		}
	}
}
