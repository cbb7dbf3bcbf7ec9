// Package discovery is the product's view of Consul: services register
// themselves with HTTP health checks, and watchers follow the instances of a
// service in any datacenter through blocking queries, delivering snapshots
// to a callback. Consul is the source of truth for which edges are healthy.
package discovery

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// NewClient returns a Consul API client for the agent at addr (host:port or
// URL); an empty addr uses CONSUL_HTTP_ADDR or the default 127.0.0.1:8500.
func NewClient(addr, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if addr != "" {
		cfg.Address = addr
	}
	if token != "" {
		cfg.Token = token
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot create consul client for %q: %w", cfg.Address, err)
	}
	return c, nil
}

// Registration describes one service instance and its HTTP health check.
type Registration struct {
	ID      string // unique per agent, e.g. "sentiment-edge-us-east-1"
	Name    string // service name, e.g. "sentiment-edge"
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string

	CheckURL      string        // e.g. http://127.0.0.1:8080/health/ready
	TLSSkipVerify bool          // an https CheckURL: do not verify the certificate
	CheckInterval time.Duration // default 1s
	CheckTimeout  time.Duration // default 1s
	// SuccessBeforePassing and FailuresBeforeCritical damp flapping: the
	// status changes only after that many consecutive results.
	SuccessBeforePassing   int
	FailuresBeforeCritical int
	// DeregisterAfter removes an instance whose check stayed critical this
	// long (Consul's minimum is one minute; 0 disables it).
	DeregisterAfter time.Duration
	// InitialStatus is the check's status until its first run: critical
	// by default, so nothing routes to a new instance early. A running,
	// ready instance that re-registers to update its meta passes
	// api.HealthPassing so it does not drop out of rotation.
	InitialStatus string
}

// Validate reports a registration that Consul would reject or misuse.
func (r Registration) Validate() error {
	switch {
	case r.ID == "" || r.Name == "":
		return errors.New("service ID and name are required")
	case r.Port <= 0 || r.Port > 65535:
		return fmt.Errorf("service port %d outside 1..65535", r.Port)
	case r.CheckURL == "":
		return errors.New("health check URL is required")
	}
	return nil
}

// Register registers the instance with agent. Registering the same ID again
// replaces it, so it is also how meta (e.g. the serving model version) is
// updated. The check starts critical so nothing routes to the instance before
// its first passing results.
func Register(agent *api.Agent, r Registration) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("cannot register %q: %w", r.ID, err)
	}
	check := &api.AgentServiceCheck{
		CheckID:                r.ID + ":http",
		Name:                   r.Name + " HTTP check",
		HTTP:                   r.CheckURL,
		Method:                 "GET",
		Interval:               orDefault(r.CheckInterval, time.Second).String(),
		Timeout:                orDefault(r.CheckTimeout, time.Second).String(),
		SuccessBeforePassing:   r.SuccessBeforePassing,
		FailuresBeforeCritical: r.FailuresBeforeCritical,
		Status:                 api.HealthCritical,
		TLSSkipVerify:          r.TLSSkipVerify,
	}
	if r.InitialStatus != "" {
		check.Status = r.InitialStatus
	}
	if r.DeregisterAfter > 0 {
		check.DeregisterCriticalServiceAfter = r.DeregisterAfter.String()
	}
	reg := &api.AgentServiceRegistration{
		ID:      r.ID,
		Name:    r.Name,
		Address: r.Address,
		Port:    r.Port,
		Tags:    r.Tags,
		Meta:    r.Meta,
		Check:   check,
	}
	// ReplaceExistingChecks keeps a re-registration from piling up checks.
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}
	if err := agent.ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("cannot register %q with consul: %w", r.ID, err)
	}
	return nil
}

// Deregister removes the instance from agent.
func Deregister(agent *api.Agent, id string) error {
	if err := agent.ServiceDeregister(id); err != nil {
		return fmt.Errorf("cannot deregister %q from consul: %w", id, err)
	}
	return nil
}

// SplitHostPort splits an advertised host:port into what a Registration
// takes.
func SplitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not 1..65535", addr, portStr)
	}
	return host, port, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Instance is one service instance as Consul sees it.
type Instance struct {
	ID         string
	Service    string
	Datacenter string
	Node       string
	Address    string // service address, or the node's when unset
	Port       int
	Tags       []string
	Meta       map[string]string
	Status     string // api.HealthPassing, HealthWarning or HealthCritical
}

// HostPort is the instance's address as host:port.
func (i Instance) HostPort() string {
	return i.Address + ":" + strconv.Itoa(i.Port)
}

// Passing reports whether every check of the instance passes.
func (i Instance) Passing() bool { return i.Status == api.HealthPassing }

// InstanceFrom converts a Consul health entry seen in datacenter dc.
func InstanceFrom(dc string, e *api.ServiceEntry) Instance {
	addr := e.Service.Address
	if addr == "" {
		addr = e.Node.Address
	}
	return Instance{
		ID:         e.Service.ID,
		Service:    e.Service.Service,
		Datacenter: dc,
		Node:       e.Node.Node,
		Address:    addr,
		Port:       e.Service.Port,
		Tags:       e.Service.Tags,
		Meta:       e.Service.Meta,
		Status:     e.Checks.AggregatedStatus(),
	}
}
