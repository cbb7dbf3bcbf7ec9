package registry

import "github.com/sentimentpro/sentiment/registry/regclient"

// The documents the API exchanges are defined with the client, in
// regclient, so that clients do not link the server; these are their
// names here.
type (
	Version     = regclient.Version
	NewVersion  = regclient.NewVersion
	Channel     = regclient.Channel
	Change      = regclient.Change
	Resolution  = regclient.Resolution
	Blob        = regclient.Blob
	AuditEntry  = regclient.AuditEntry
	MoveRequest = regclient.MoveRequest
	Candidate   = regclient.Candidate
)

// GlobalScope names the channel's global target in Targets and Before.
const GlobalScope = regclient.GlobalScope

// ValidateName checks a model, version, channel or region name.
func ValidateName(kind, name string) error { return regclient.ValidateName(kind, name) }
