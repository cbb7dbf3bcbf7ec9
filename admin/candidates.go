package admin

import (
	"fmt"
	"maps"
	"net/http"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sentimentpro/sentiment/registry"
	"github.com/sentimentpro/sentiment/registry/wire"
)

var (
	candidatesOK      = metrics.NewCounter(`registry_candidate_moves_total{result="ok"}`)
	candidatesRefused = metrics.NewCounter(`registry_candidate_moves_total{result="refused"}`)
)

// setCandidate is PUT .../channels/{channel}/candidates/{region}: a
// version beside the region's target, answering a share of its requests
// and scoring a copy of the others in the shadow (the edges hold both).
// Admins only; audited like every move.
func (ad *admin) setCandidate(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	name, channel, region := r.PathValue("name"), r.PathValue("channel"), r.PathValue("region")
	var req wire.CandidateRequest
	if err := registry.ReadJSON(r, 64<<10, &req); err != nil {
		return err
	}
	if err := validateCandidate(region, req); err != nil {
		return err
	}
	entry := ad.candidateEntry(r, p, "set_candidate", region, req)
	entry.Detail = fmt.Sprintf("percent=%g shadow=%g", req.Percent, req.Shadow)
	c, err := ad.reg.UpdateChannel(r.Context(), name, channel, nil, func(cur wire.Channel) (wire.Channel, error) {
		target := cur.Resolve(region)
		switch {
		case cur.Revision == 0:
			return wire.Channel{}, fmt.Errorf("channel %s/%s: %w", name, channel, registry.ErrNotFound)
		case target == "":
			return wire.Channel{}, fmt.Errorf("%w: region %s of %s/%s has no target to put a candidate beside", registry.ErrConflict, region, name, channel)
		case target == req.Version:
			return wire.Channel{}, fmt.Errorf("%w: %s is already region %s's target", wire.ErrInvalid, req.Version, region)
		}
		next := cur
		next.Candidates = maps.Clone(cur.Candidates)
		if next.Candidates == nil {
			next.Candidates = map[string]wire.Candidate{}
		}
		next.Candidates[region] = req.Candidate
		next.Change = wire.Change{Action: "set_candidate", Actor: p.Name, Regions: []string{region}, Reason: req.Reason,
			RequestID: registry.RequestID(r.Context())}
		return next, nil
	})
	return ad.finishMove(w, r, entry, c, err, candidatesOK, candidatesRefused)
}

// clearCandidate is DELETE .../candidates/{region}: the region's target
// answers everything again.
func (ad *admin) clearCandidate(w http.ResponseWriter, r *http.Request, p registry.Principal) error {
	name, channel, region := r.PathValue("name"), r.PathValue("channel"), r.PathValue("region")
	if err := wire.ValidateName("region", region); err != nil {
		return err
	}
	entry := ad.candidateEntry(r, p, "clear_candidate", region, wire.CandidateRequest{})
	c, err := ad.reg.UpdateChannel(r.Context(), name, channel, nil, func(cur wire.Channel) (wire.Channel, error) {
		old, ok := cur.Candidates[region]
		if !ok {
			return wire.Channel{}, fmt.Errorf("region %s of %s/%s has no candidate: %w", region, name, channel, registry.ErrNotFound)
		}
		entry.Version = old.Version
		next := cur
		next.Candidates = withoutCandidates(cur.Candidates, []string{region})
		next.Change = wire.Change{Action: "clear_candidate", Actor: p.Name, Regions: []string{region},
			RequestID: registry.RequestID(r.Context())}
		return next, nil
	})
	return ad.finishMove(w, r, entry, c, err, candidatesOK, candidatesRefused)
}

func validateCandidate(region string, req wire.CandidateRequest) error {
	if err := wire.ValidateName("region", region); err != nil {
		return err
	}
	if err := wire.ValidateName("version", req.Version); err != nil {
		return err
	}
	if req.Percent < 0 || req.Percent > 100 || req.Shadow < 0 || req.Shadow > 1 {
		return fmt.Errorf("%w: percent must be 0 to 100 and shadow 0 to 1", wire.ErrInvalid)
	}
	if len(req.Reason) > 1024 {
		return fmt.Errorf("%w: reason longer than 1024 bytes", wire.ErrInvalid)
	}
	return nil
}

func (ad *admin) candidateEntry(r *http.Request, p registry.Principal, action, region string, req wire.CandidateRequest) wire.AuditEntry {
	return wire.AuditEntry{Actor: p.Name, Role: p.Role.String(), Action: action, Model: r.PathValue("name"),
		Channel: r.PathValue("channel"), Version: req.Version, Regions: []string{region}, Reason: req.Reason,
		RequestID: registry.RequestID(r.Context())}
}

// withoutCandidates drops the candidates of regions (every one with no
// regions): a promote or a rollback there ends the rollout.
func withoutCandidates(c map[string]wire.Candidate, regions []string) map[string]wire.Candidate {
	if len(regions) == 0 || len(c) == 0 {
		return nil
	}
	out := maps.Clone(c)
	for _, region := range regions {
		delete(out, region)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
