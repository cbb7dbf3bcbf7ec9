package discovery

import (
	"fmt"

	"github.com/hashicorp/consul/api"
)

// FailoverQuery is a Consul prepared query for DNS-based clients: it
// answers with the passing instances of Service in the datacenter it is
// executed in and, when there are none, in the NearestN closest remote
// datacenters by network coordinates, then in Datacenters in order.
// Clients resolve "<Name>.query.consul" on their local agent.
type FailoverQuery struct {
	Name        string
	Service     string
	NearestN    int
	Datacenters []string
	// TTL is the DNS answer's time to live, e.g. "5s".
	TTL string
}

// definition is the query as Consul stores it.
func (q FailoverQuery) definition() *api.PreparedQueryDefinition {
	return &api.PreparedQueryDefinition{
		Name: q.Name,
		Service: api.ServiceQuery{
			Service:     q.Service,
			OnlyPassing: true,
			Failover:    api.QueryFailoverOptions{NearestN: q.NearestN, Datacenters: q.Datacenters},
		},
		DNS: api.QueryDNSOptions{TTL: q.TTL},
	}
}

// UpsertQuery creates the query in datacenter dc, or updates the query of
// the same name there, and returns its ID. Running it again is harmless.
func UpsertQuery(c *api.Client, dc string, q FailoverQuery) (string, error) {
	if q.Name == "" || q.Service == "" {
		return "", fmt.Errorf("cannot create a prepared query without a name and a service")
	}
	pq := c.PreparedQuery()
	existing, _, err := pq.List(&api.QueryOptions{Datacenter: dc})
	if err != nil {
		return "", fmt.Errorf("cannot list prepared queries in %s: %w", dc, err)
	}
	def := q.definition()
	for _, e := range existing {
		if e.Name == q.Name {
			def.ID = e.ID
			if _, err := pq.Update(def, &api.WriteOptions{Datacenter: dc}); err != nil {
				return "", fmt.Errorf("cannot update prepared query %q in %s: %w", q.Name, dc, err)
			}
			return def.ID, nil
		}
	}
	id, _, err := pq.Create(def, &api.WriteOptions{Datacenter: dc})
	if err != nil {
		return "", fmt.Errorf("cannot create prepared query %q in %s: %w", q.Name, dc, err)
	}
	return id, nil
}
