// Package wire holds the documents the registry's HTTP API exchanges
// (versions, channels, moves, rollouts, webhooks, status, audit) and its
// validation of names: the server, the client (regclient), the console and
// sentctl all import them from here, so each is written once.
package wire

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"

	"github.com/sentimentpro/sentiment/model"
)

// Version is the metadata of one immutable model version.
type Version struct {
	Model       string            `json:"model"`
	Version     string            `json:"version"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Signature   *model.Signature  `json:"signature,omitempty"`
	SignedBy    string            `json:"signed_by,omitempty"` // key ID that verified the signature
	Publisher   string            `json:"publisher"`
	CreatedAt   time.Time         `json:"created_at"`
	Labels      map[string]string `json:"labels,omitempty"`
	Description string            `json:"description,omitempty"`
	// Artifact is the artifact's own header: features, training data
	// digest, evaluation metrics.
	Artifact model.Metadata `json:"artifact"`
	// EditedBy and EditedAt name the last edit of the labels or the
	// description, if any.
	EditedBy string     `json:"edited_by,omitempty"`
	EditedAt *time.Time `json:"edited_at,omitempty"`
}

// VersionEdit is a PATCH of a version's labels (a null value removes the
// label) and description.
type VersionEdit struct {
	Labels      map[string]*string `json:"labels,omitempty"`
	Description *string            `json:"description,omitempty"`
}

// SignatureState says whether the version is signed and whether this
// registry verified the signature.
func (v Version) SignatureState() string {
	switch {
	case v.Signature == nil:
		return "unsigned"
	case v.SignedBy != "":
		return "signed by key " + v.SignedBy + ", verified by the registry"
	default:
		return "signed by key " + v.Signature.KeyID + ", not trusted here (the registry verifies only its -trusted-keys)"
	}
}

// Accuracy is the evaluation accuracy recorded in the artifact, if any.
func (v Version) Accuracy() (float64, bool) {
	if v.Artifact.Metrics == nil {
		return 0, false
	}
	return v.Artifact.Metrics.Accuracy, true
}

// NewVersion is what a publisher sends to create a version from an
// uploaded blob.
type NewVersion struct {
	Digest      string            `json:"digest"`
	Signature   *model.Signature  `json:"signature,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Description string            `json:"description,omitempty"`
}

// GlobalScope names the channel's global target in Targets and Before.
const GlobalScope = "*"

// Channel is a named pointer to model versions: a global target and
// optional per-region overrides. Each move is a new revision; the revisions
// are the channel's history.
type Channel struct {
	Model   string            `json:"model"`
	Channel string            `json:"channel"`
	Global  string            `json:"global,omitempty"`
	Regions map[string]string `json:"regions,omitempty"`
	// Digests holds the digest of every target version when the revision
	// was written, so a rollback to it serves exactly those bytes.
	Digests map[string]string `json:"digests,omitempty"`
	// Candidates are a staged rollout's second versions, by region: each
	// answers a share of the region's requests beside its target, and may
	// score a copy of the rest in the shadow.
	Candidates map[string]Candidate `json:"candidates,omitempty"`
	// RolloutFence is the rollout revision whose action last moved the
	// channel: an action from an older revision (a controller that lost
	// its lease) is not applied over it.
	RolloutFence uint64    `json:"rollout_fence,omitempty"`
	Change       Change    `json:"change"`
	UpdatedAt    time.Time `json:"updated_at"`
	Revision     uint64    `json:"revision"` // filled in on read
}

// Change records the move that produced a revision.
type Change struct {
	Action    string            `json:"action"` // "promote" or "rollback"
	Actor     string            `json:"actor"`
	Regions   []string          `json:"regions,omitempty"` // empty: global
	Before    map[string]string `json:"before,omitempty"`  // targets before the move ("*" = global)
	After     map[string]string `json:"after,omitempty"`   // targets after the move
	Reason    string            `json:"reason,omitempty"`
	Forced    bool              `json:"forced,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// Candidate is a version beside a region's target: it answers Percent of
// the requests (0 to 100, by a sticky key), and scores a copy of Shadow
// (0 to 1) of the others, whose answers stay the target's.
type Candidate struct {
	Version string  `json:"version"`
	Percent float64 `json:"percent"`
	Shadow  float64 `json:"shadow,omitempty"`
}

// CandidateRequest sets a region's candidate (admin API).
type CandidateRequest struct {
	Candidate
	Reason string `json:"reason,omitempty"`
}

// Resolve returns the version the channel serves in region ("" if none).
func (c Channel) Resolve(region string) string {
	if v, ok := c.Regions[region]; ok && region != "" {
		return v
	}
	return c.Global
}

// Targets returns every target: "*" for the global one, then overrides.
func (c Channel) Targets() map[string]string {
	t := maps.Clone(c.Regions)
	if t == nil {
		t = map[string]string{}
	}
	if c.Global != "" {
		t[GlobalScope] = c.Global
	}
	return t
}

// Resolution is what an edge needs to serve a channel in its region.
type Resolution struct {
	Model     string  `json:"model"`
	Channel   string  `json:"channel"`
	Region    string  `json:"region,omitempty"`
	Revision  uint64  `json:"revision"`
	Version   Version `json:"version"`
	ChangedAt string  `json:"changed_at"`
	// Candidate is the region's rollout candidate, if any.
	Candidate *ResolvedCandidate `json:"candidate,omitempty"`
}

// ResolvedCandidate is a region's candidate with its version's record.
type ResolvedCandidate struct {
	Version Version `json:"version"`
	Percent float64 `json:"percent"`
	Shadow  float64 `json:"shadow,omitempty"`
}

// Blob describes a stored artifact.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// AuditEntry is one recorded action. Entries are write-once objects, never
// rewritten; Before/After hold targets ("*" = global) for channel moves.
type AuditEntry struct {
	ID        string            `json:"id"`
	Time      time.Time         `json:"time"`
	Actor     string            `json:"actor"`
	Role      string            `json:"role,omitempty"`
	Action    string            `json:"action"` // publish, create_version, promote, rollback, delete, auth_denied, …
	Result    string            `json:"result"` // ok, denied, refused, error
	Model     string            `json:"model,omitempty"`
	Version   string            `json:"version,omitempty"`
	Digest    string            `json:"digest,omitempty"`
	Channel   string            `json:"channel,omitempty"`
	Regions   []string          `json:"regions,omitempty"`
	Before    map[string]string `json:"before,omitempty"`
	After     map[string]string `json:"after,omitempty"`
	Revision  uint64            `json:"revision,omitempty"`
	Forced    bool              `json:"forced,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Route     string            `json:"route,omitempty"`
}

// ErrInvalid is a request the registry refuses as malformed (HTTP 400).
var ErrInvalid = errors.New("invalid request")

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateName checks a model, version, channel or region name: 1-64 of
// [a-z0-9._-], starting with a letter or digit (so never "." or "..").
func ValidateName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q must be 1-64 characters of [a-z0-9._-] starting with a letter or digit", ErrInvalid, kind, name)
	}
	return nil
}

// InstanceStatus is one edge and the version it says it serves.
type InstanceStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Health  string `json:"health"` // passing, warning or critical
	Version string `json:"version"`
	Digest  string `json:"digest,omitempty"`
	Current bool   `json:"current"` // serves the expected version
}

// RegionStatus compares what a region should serve with what its edges say.
type RegionStatus struct {
	Region     string           `json:"region"`
	Datacenter string           `json:"datacenter"`
	Expected   string           `json:"expected"`
	Instances  []InstanceStatus `json:"instances"`
	Converged  bool             `json:"converged"` // every passing edge serves Expected
}

// Status is what every edge serves against what a channel says (GET
// /v1/admin/models/{name}/status).
type Status struct {
	Model     string         `json:"model"`
	Channel   string         `json:"channel"`
	Revision  uint64         `json:"revision"`
	Regions   []RegionStatus `json:"regions"`
	Converged bool           `json:"converged"`
	Errors    []string       `json:"errors,omitempty"` // sources that could not be asked
}
