package wire

// MoveRequest is the body of the admin API's promote and rollback.
type MoveRequest struct {
	// Version to promote; for rollback, an explicit version to roll back to
	// (default: the previous target from the channel's history).
	Version string `json:"version,omitempty"`
	// Regions limits the move to these regions' overrides; empty moves the
	// global target (and, for promote, clears every override).
	Regions []string `json:"regions,omitempty"`
	Force   bool     `json:"force,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	// ExpectRevision makes the move conditional on the channel still being
	// at that revision (409 otherwise), for careful tooling.
	ExpectRevision *uint64 `json:"expect_revision,omitempty"`
	// DryRun (promote) answers with the quality gate's verdict and the
	// move instead of making it.
	DryRun bool `json:"dry_run,omitempty"`
}

// DryRun is what a promote would do: the quality gate's verdict with the
// accuracy of the candidate and of each version it would replace, and
// the targets before and after.
type DryRun struct {
	DryRun    bool              `json:"dry_run"`
	Gate      string            `json:"gate"` // "passed", "refused: …", "skipped (forced)", "not applied (not a production channel)"
	Candidate VersionAccuracy   `json:"candidate"`
	Replaced  []VersionAccuracy `json:"replaced"`
	Revision  uint64            `json:"revision"`
	Before    map[string]string `json:"before"`
	After     map[string]string `json:"after"`
}

// VersionAccuracy is a version and its recorded accuracy, if any.
type VersionAccuracy struct {
	Version  string   `json:"version"`
	Accuracy *float64 `json:"accuracy,omitempty"`
}
