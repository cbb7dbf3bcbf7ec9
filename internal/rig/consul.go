package rig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// ConsulAgent is one Consul dev agent: a single-server datacenter.
type ConsulAgent struct {
	Datacenter string
	HTTPPort   int
	DNSPort    int
	SerfWAN    int
	proc       *Process

	clientOnce sync.Once
	client     *api.Client
}

// HTTPAddr is the agent's HTTP API address (host:port).
func (a *ConsulAgent) HTTPAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.HTTPPort) }

// Client returns an API client bound to this agent. It is made once: each
// api.Client has its own connection pool, and Consul limits connections
// per client address (200 by default), which every process on 127.0.0.1
// shares.
func (a *ConsulAgent) Client() *api.Client {
	a.clientOnce.Do(func() {
		cfg := api.DefaultConfig()
		cfg.Address = a.HTTPAddr()
		c, err := api.NewClient(cfg)
		if err != nil {
			panic(err) // only fails on a malformed TLS config, which we never set
		}
		a.client = c
	})
	return a.client
}

// Process gives access to the agent's process (stop, kill, pause).
func (a *ConsulAgent) Process() *Process { return a.proc }

// ConsulCluster is a set of dev agents, one per datacenter, joined over WAN.
type ConsulCluster struct {
	Agents []*ConsulAgent
}

// Agent returns the agent of datacenter dc, or nil.
func (c *ConsulCluster) Agent(dc string) *ConsulAgent {
	for _, a := range c.Agents {
		if a.Datacenter == dc {
			return a
		}
	}
	return nil
}

// Stop stops every agent. A dev agent exits with status 1 on SIGTERM.
func (c *ConsulCluster) Stop() {
	for _, a := range c.Agents {
		a.proc.Stop(5 * time.Second)
	}
}

// StartConsul starts the cluster with logs under dir and waits until every
// agent has a leader and lists every datacenter. Callers must Stop it.
func StartConsul(dir string, dcs ...string) (*ConsulCluster, error) {
	if len(dcs) == 0 {
		return nil, errors.New("cannot start Consul: no datacenter named")
	}
	bin, err := Binary("consul", "SAP_CONSUL_BIN")
	if err != nil {
		return nil, err
	}
	c := &ConsulCluster{}
	for _, dc := range dcs {
		a, err := startAgent(bin, dir, dc)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Agents = append(c.Agents, a)
	}
	if err := c.joinWAN(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func startAgent(bin, dir, dc string) (*ConsulAgent, error) {
	ports, err := FreePorts(7)
	if err != nil {
		return nil, err
	}
	a := &ConsulAgent{Datacenter: dc, HTTPPort: ports[0], DNSPort: ports[1], SerfWAN: ports[5]}
	logDir := filepath.Join(dir, "consul-"+dc)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", logDir, err)
	}
	a.proc = &Process{
		Name: "consul " + dc,
		Path: bin,
		Args: []string{
			"agent", "-dev",
			"-datacenter", dc,
			"-node", "node-" + dc,
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(ports[0]),
			"-dns-port", strconv.Itoa(ports[1]),
			"-grpc-port", strconv.Itoa(ports[2]),
			"-grpc-tls-port", strconv.Itoa(ports[3]),
			"-serf-lan-port", strconv.Itoa(ports[4]),
			"-serf-wan-port", strconv.Itoa(ports[5]),
			"-server-port", strconv.Itoa(ports[6]),
			"-hcl", "disable_update_check = true",
			"-log-level", "warn",
		},
		LogPath: filepath.Join(logDir, "consul.log"),
	}
	if err := a.Start(); err != nil {
		return nil, err
	}
	return a, nil
}

// Start (re)starts the agent on its ports and waits for its leader. A dev
// agent keeps no state across restarts: registrations and WAN joins are gone.
func (a *ConsulAgent) Start() error {
	if err := a.proc.Start(); err != nil {
		return err
	}
	return a.proc.WaitFor(60*time.Second, func() error {
		leader, err := a.Client().Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (c *ConsulCluster) joinWAN() error {
	var running []*ConsulAgent
	for _, a := range c.Agents {
		if a.proc.Running() {
			running = append(running, a)
		}
	}
	if len(running) == 0 {
		return errors.New("cannot join Consul agents: none is running")
	}
	first := running[0]
	for _, a := range running[1:] {
		addr := fmt.Sprintf("127.0.0.1:%d", first.SerfWAN)
		if err := a.Client().Agent().Join(addr, true); err != nil {
			return fmt.Errorf("cannot join consul %s to %s over WAN: %w", a.Datacenter, first.Datacenter, err)
		}
	}
	var want []string
	for _, a := range running {
		want = append(want, a.Datacenter)
	}
	slices.Sort(want)
	for _, a := range running {
		err := a.proc.WaitFor(60*time.Second, func() error {
			got, err := a.Client().Catalog().Datacenters()
			if err != nil {
				return err
			}
			slices.Sort(got) // sorted by RTT, not name
			if !slices.Equal(got, want) {
				return fmt.Errorf("datacenters %v, want %v", got, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
