package rollout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/sentimentpro/sentiment/discovery"
)

// Edge is one edge whose metrics a rollout reads.
type Edge struct {
	ID     string
	Region string
	URL    string // base URL, e.g. https://10.0.0.7:8080
}

// Edges finds the edges that serve a model's channel in some regions.
type Edges interface {
	Edges(ctx context.Context, model, channel string, regions []string) ([]Edge, error)
}

// StaticEdges is a fixed list (the local stack of `make run`, which has
// no Consul).
type StaticEdges []Edge

// ParseStaticEdges reads "region=URL,region=URL".
func ParseStaticEdges(s string) (StaticEdges, error) {
	var out StaticEdges
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		region, u, ok := strings.Cut(item, "=")
		if !ok || region == "" || !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("edge %q: want region=http(s)://host:port", item)
		}
		out = append(out, Edge{ID: region + "@" + u, Region: region, URL: strings.TrimSuffix(u, "/")})
	}
	return out, nil
}

// Edges returns the listed edges of regions.
func (s StaticEdges) Edges(_ context.Context, _, _ string, regions []string) ([]Edge, error) {
	var out []Edge
	for _, e := range s {
		if slices.Contains(regions, e.Region) {
			out = append(out, e)
		}
	}
	return out, nil
}

// ConsulEdges finds edges through Consul: the passing instances of the
// edge service, in every datacenter, whose metadata name the model,
// channel and one of the regions.
type ConsulEdges struct {
	Client      *api.Client
	Datacenters []string // default: every datacenter Consul knows
	Service     string   // the edges' service name
	Scheme      string   // http or https
}

// Edges asks each datacenter.
func (c ConsulEdges) Edges(ctx context.Context, model, channel string, regions []string) ([]Edge, error) {
	dcs := c.Datacenters
	if len(dcs) == 0 {
		var err error
		if dcs, err = c.Client.Catalog().Datacenters(); err != nil {
			return nil, fmt.Errorf("cannot list datacenters: %w", err)
		}
	}
	var out []Edge
	var errs []error
	for _, dc := range dcs {
		entries, _, err := c.Client.Health().Service(c.Service, "", true, (&api.QueryOptions{Datacenter: dc}).WithContext(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("datacenter %s: %w", dc, err))
			continue
		}
		for _, e := range entries {
			in := discovery.InstanceFrom(dc, e)
			region := in.Meta[discovery.MetaRegion]
			if _, ok := discovery.ServedFrom(in.Meta, model, channel); !ok || !slices.Contains(regions, region) {
				continue
			}
			out = append(out, Edge{ID: dc + "/" + in.ID, Region: region, URL: c.Scheme + "://" + in.HostPort()})
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// maxMetricsBytes bounds one scrape.
const maxMetricsBytes = 8 << 20

// scrape reads an edge's /metrics and returns the series of the rollout:
// those of model's stable version (stable) and of the candidate.
func scrape(ctx context.Context, client *http.Client, e Edge, model, stable, candidate string) (Counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot read the metrics of edge %s: %w", e.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot read the metrics of edge %s: HTTP %d", e.ID, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetricsBytes), model, stable, candidate)
}

// parseMetrics reads Prometheus text exposition and keeps the rollout's
// series (see Counters): model's, or those without a model label (an edge
// older than several models serves one).
func parseMetrics(r io.Reader, model, stable, candidate string) (Counters, error) {
	out := Counters{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, "edge_") {
			continue
		}
		name, labels, value, ok := parseSample(line)
		if m, labelled := labels["model"]; !ok || labelled && m != model {
			continue
		}
		role := ""
		switch labels["version"] {
		case candidate:
			role = roleCandidate
		case stable:
			role = roleStable
		default:
			continue
		}
		if key := seriesKey(name, role, labels); key != "" {
			out[key] += value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read metrics: %w", err)
	}
	return out, nil
}

func seriesKey(name, role string, labels map[string]string) string {
	switch name {
	case "edge_version_requests_total":
		return "requests/" + role
	case "edge_version_errors_total":
		return "errors/" + role
	case "edge_version_request_duration_seconds_bucket":
		return "latency/" + role + "/" + labels["le"]
	case "edge_predictions_total":
		return "label/" + role + "/" + labels["label"]
	case "edge_prediction_score_ratio_bucket":
		return "score/" + role + "/" + labels["le"]
	case "edge_shadow_predictions_total":
		if role == roleCandidate {
			return "shadow/candidate/" + labels["result"]
		}
	}
	return ""
}

// parseSample splits `name{k="v",...} value [timestamp]`.
func parseSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, 0, false
	}
	name, rest := line[:i], line[i:]
	labels = map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return "", nil, 0, false
			}
			key := rest[:eq]
			val, n, good := unquote(rest[eq+1:])
			if !good {
				return "", nil, 0, false
			}
			labels[key] = val
			rest = rest[eq+1+n:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, false
	}
	return name, labels, v, true
}

// unquote reads a quoted label value at the start of s and returns it
// with the number of bytes it took.
func unquote(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 >= len(s) {
				return "", 0, false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
