// Package geo is the geo-routed entry point: it decides, for each client,
// the order in which to try regions (nearest first) and proxies predictions
// to a healthy edge of the first region that answers, failing over to the
// next behind per-region circuit breakers.
package geo

import (
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/sentimentpro/sentiment/geo/regions"
)

// Locator orders regions for a client: an explicit hint, else the
// country of the client's address from an MMDB database, else a default.
type Locator struct {
	Regions []regions.Region
	// Overrides sends a country (ISO 3166 alpha-2) to a region first,
	// whatever the distance: large countries, legal constraints.
	Overrides map[string]string
	// DB maps addresses to countries (DB-IP or MaxMind country layout);
	// nil skips the lookup.
	DB      *maxminddb.Reader
	Default string

	// byRegion and byCountry memoize ByDistance per region name and per
	// country code: the answer depends only on the key and the fields
	// above, which must not change once the Locator is in use.
	byRegion, byCountry sync.Map // string -> []string
}

// countryRecord decodes both common country MMDB layouts.
type countryRecord struct {
	CountryCode string `maxminddb:"country_code"` // DB-IP / ip-location-db
	Country     struct {
		ISOCode string `maxminddb:"iso_code"` // MaxMind GeoLite2
	} `maxminddb:"country"`
}

// Country returns the ISO code for addr from the database, or "".
func (l *Locator) Country(addr netip.Addr) string {
	if l.DB == nil || !addr.IsValid() {
		return ""
	}
	var rec countryRecord
	if err := l.DB.Lookup(addr.Unmap()).Decode(&rec); err != nil {
		return ""
	}
	if rec.CountryCode != "" {
		return strings.ToUpper(rec.CountryCode)
	}
	return strings.ToUpper(rec.Country.ISOCode)
}

// Order returns every region name, nearest first, and how the client was
// placed: "hint", "country:XX" or "default". The slice is shared: callers
// must not modify it.
func (l *Locator) Order(hint string, addr netip.Addr) ([]string, string) {
	if r := l.region(hint); r != nil {
		return l.regionOrder(r), "hint"
	}
	if cc := l.Country(addr); cc != "" {
		if order := l.countryOrder(cc); order != nil {
			return order, "country:" + cc
		}
	}
	if r := l.region(l.Default); r != nil {
		return l.regionOrder(r), "default"
	}
	return l.regionOrder(&l.Regions[0]), "default"
}

// regionOrder is every region by distance from r, r first.
func (l *Locator) regionOrder(r *regions.Region) []string {
	return memo(&l.byRegion, r.Name, func() []string { return regions.ByDistance(l.Regions, r.Lat, r.Lon, r.Name) })
}

// countryOrder is every region by distance from the country's centroid,
// its override first; nil when the country is neither in the centroid
// table nor overridden.
func (l *Locator) countryOrder(cc string) []string {
	first := l.Overrides[cc]
	if c, ok := countryCentroids[cc]; ok {
		return memo(&l.byCountry, cc, func() []string { return regions.ByDistance(l.Regions, c[0], c[1], first) })
	}
	if r := l.region(first); r != nil {
		return l.regionOrder(r)
	}
	return nil
}

// memo is m's order for key, computed once.
func memo(m *sync.Map, key string, compute func() []string) []string {
	if v, ok := m.Load(key); ok {
		return v.([]string)
	}
	v, _ := m.LoadOrStore(key, compute())
	return v.([]string)
}

func (l *Locator) region(name string) *regions.Region { return regions.Find(l.Regions, name) }
