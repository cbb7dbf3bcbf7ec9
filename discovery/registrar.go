package discovery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Service meta keys: what an instance reports about itself in Consul. The
// edges' keys feed rollout status (admin) and the geo router's placement.
const (
	MetaRegion   = "region"         // the region the instance serves
	MetaModel    = "model"          // the model name an edge serves
	MetaChannel  = "channel"        // the channel an edge follows
	MetaVersion  = "model_version"  // the model version an edge serves
	MetaDigest   = "model_digest"   // its digest
	MetaRejected = "model_rejected" // the last version an edge refused to load
	MetaBuild    = "build"          // the binary's own version
	// MetaArtifacts lists the artifacts an edge's blob server holds
	// verified, as hex SHA-256 separated by spaces (package distrib).
	MetaArtifacts = "artifacts"
	// MetaGRPCPort is the port of an edge's gRPC listener (same address),
	// which the geo router forwards gRPC calls to.
	MetaGRPCPort = "grpc_port"
)

// Registrar keeps one instance registered with its local agent as it is
// meant to be (the desired registration), in the manner of Nomad's service
// client: Update changes what is wanted and applies it, and Run re-applies
// it whenever the agent no longer has it (an agent restart loses every
// registration) or the last attempt failed (the agent was down). So a
// service that starts before its agent, or outlives an agent restart,
// registers itself as soon as the agent answers.
type Registrar struct {
	agent *api.Agent
	log   *slog.Logger
	// passing, if set, says whether the instance is ready now; a
	// registration made while it is starts with a passing check, so a
	// re-registration does not drop a serving instance out of rotation.
	passing func() bool

	mu      sync.Mutex
	want    Registration
	synced  bool // the agent accepted the last wanted registration
	stopped bool // deregistered: nothing is applied any more
}

// NewRegistrar returns a registrar for want on agent. passing may be nil:
// every registration then starts critical until its first check passes.
func NewRegistrar(agent *api.Agent, want Registration, passing func() bool, log *slog.Logger) *Registrar {
	if log == nil {
		log = slog.Default()
	}
	return &Registrar{agent: agent, log: log, passing: passing, want: want}
}

// ID is the registered service ID.
func (r *Registrar) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.want.ID
}

// Update changes the wanted registration with change (nil: none) and
// applies it now. On failure Run applies it later.
func (r *Registrar) Update(change func(*Registration)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if change != nil {
		meta := make(map[string]string, len(r.want.Meta))
		for k, v := range r.want.Meta {
			meta[k] = v
		}
		r.want.Meta = meta
		change(&r.want)
	}
	return r.applyLocked()
}

func (r *Registrar) applyLocked() error {
	if r.stopped {
		return nil
	}
	reg := r.want
	if r.passing != nil && r.passing() {
		reg.InitialStatus = api.HealthPassing
	}
	err := Register(r.agent, reg)
	r.synced = err == nil
	return err
}

// Run re-applies the wanted registration every interval (default 5s) when
// the agent lost it or the last attempt failed, until ctx ends.
func (r *Registrar) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.sync()
	}
}

func (r *Registrar) sync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.synced {
		if _, _, err := r.agent.Service(r.want.ID, nil); err == nil {
			return
		}
	}
	if err := r.applyLocked(); err != nil {
		r.log.Warn("cannot register in consul; will retry", "service_id", r.want.ID, "err", err)
		return
	}
	r.log.Info("registered in consul", "service_id", r.want.ID)
}

// Deregister removes the instance from the agent (on drain).
func (r *Registrar) Deregister() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced, r.stopped = false, true
	return Deregister(r.agent, r.want.ID)
}
