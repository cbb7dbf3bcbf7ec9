package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sentimentpro/sentiment/internal/config"
	"github.com/sentimentpro/sentiment/internal/tlsfiles"
)

// runSmoke checks a deployment end to end through its public endpoint (the
// geo router, or one edge): predictions with the expected labels, every
// region reachable by hint, the route table, and a clear 400 on bad input.
func runSmoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("smoke", stderr)
	base := fs.String("url", "", "the endpoint clients use (geo router or an edge), e.g. http://127.0.0.1:8080")
	regions := fs.String("regions", "", "regions that must answer when hinted with X-Region, e.g. us-east,eu-west")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout per request")
	ca := fs.String("ca", "", "CA file an https endpoint's certificate must chain to (or SENTCTL_CA; default: the system's)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "url"); err != nil {
		return err
	}
	tlsCfg, err := tlsfiles.ClientConfig(*ca, "", "", nil)
	if err != nil {
		return err
	}
	s := smoke{base: strings.TrimRight(*base, "/"), client: tlsfiles.HTTPClient(tlsCfg, *timeout), out: stdout}
	s.check("positive text", func() error { return s.expectLabel("an absolutely wonderful, moving film", "", "positive") })
	s.check("negative text", func() error { return s.expectLabel("a dull, boring and badly acted mess", "", "negative") })
	for _, r := range config.List(*regions) {
		s.check("region "+r, func() error { return s.expectLabel("a wonderful film", r, "positive") })
	}
	s.check("route table", func() error { return s.expectRoutes(config.List(*regions)) })
	s.check("bad input answered 400", s.expectBadRequest)
	if s.failed > 0 {
		return fmt.Errorf("%d of %d checks failed", s.failed, s.total)
	}
	fmt.Fprintf(stdout, "smoke: all %d checks passed\n", s.total)
	return nil
}

type smoke struct {
	base          string
	client        *http.Client
	out           io.Writer
	total, failed int
}

func (s *smoke) check(name string, f func() error) {
	s.total++
	if err := f(); err != nil {
		s.failed++
		fmt.Fprintf(s.out, "FAIL %-24s %v\n", name, err)
		return
	}
	fmt.Fprintf(s.out, "ok   %s\n", name)
}

func (s *smoke) post(body, region string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, s.base+"/v1/predict", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if region != "" {
		req.Header.Set("X-Region", region)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, data, err
}

func (s *smoke) expectLabel(text, region, label string) error {
	body, _ := json.Marshal(map[string]string{"text": text})
	resp, data, err := s.post(string(body), region)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	var p struct {
		Label, Region, Version string
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("cannot decode %q: %w", data, err)
	}
	if p.Label != label {
		return fmt.Errorf("label %q, want %q (model version %s)", p.Label, label, p.Version)
	}
	if region != "" && p.Region != region {
		return fmt.Errorf("served by region %q (failovers: %s)", p.Region, resp.Header.Get("X-Failovers"))
	}
	return nil
}

func (s *smoke) expectRoutes(regions []string) error {
	resp, err := s.client.Get(s.base + "/v1/route")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		fmt.Fprintln(s.out, "     (no /v1/route: the URL is an edge, not the geo router)")
		return nil
	}
	var route struct {
		Regions []struct {
			Region string   `json:"region"`
			Edges  []string `json:"edges"`
		} `json:"regions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&route); err != nil {
		return fmt.Errorf("cannot decode /v1/route: %w", err)
	}
	var errs []error
	for _, want := range regions {
		found := false
		for _, r := range route.Regions {
			if r.Region == want {
				found = true
				if len(r.Edges) == 0 {
					errs = append(errs, fmt.Errorf("no healthy edge in %s", want))
				}
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("region %s is not routed", want))
		}
	}
	return errors.Join(errs...)
}

func (s *smoke) expectBadRequest() error {
	resp, data, err := s.post(`{"text": 5}`, "")
	if err != nil {
		return err
	}
	var e struct{ Error string }
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(data, &e) != nil || e.Error == "" {
		return fmt.Errorf("status %d, body %q: want 400 with a JSON error", resp.StatusCode, data)
	}
	return nil
}
