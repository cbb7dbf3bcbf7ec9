// Package geo is the geo-routed entry point: it decides, for each client,
// the order in which to try regions (nearest first) and proxies predictions
// to a healthy edge of the first region that answers, failing over to the
// next behind per-region circuit breakers.
package geo

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Region is a serving region and where it is.
type Region struct {
	Name     string
	Lat, Lon float64
}

// DefaultRegions are the three regions of the local stacks and their
// locations (Washington, Dublin, Mumbai), in ParseRegions' format.
const DefaultRegions = "us-east=38.9,-77.0;eu-west=53.3,-6.3;ap-south=19.1,72.9"

// ParseRegions reads "us-east=38.9,-77.0;eu-west=53.3,-6.3".
func ParseRegions(s string) ([]Region, error) {
	var out []Region
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, coords, ok := strings.Cut(item, "=")
		lat, lon, ok2 := strings.Cut(coords, ",")
		if !ok || !ok2 || name == "" {
			return nil, fmt.Errorf("region %q: want name=lat,lon", item)
		}
		la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
		if err1 != nil || err2 != nil || la < -90 || la > 90 || lo < -180 || lo > 180 {
			return nil, fmt.Errorf("region %q: latitude and longitude out of range", item)
		}
		out = append(out, Region{Name: strings.TrimSpace(name), Lat: la, Lon: lo})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no regions configured")
	}
	return out, nil
}

// Locator orders regions for a client: an explicit hint, else the
// country of the client's address from an MMDB database, else a default.
type Locator struct {
	Regions []Region
	// Overrides sends a country (ISO 3166 alpha-2) to a region first,
	// whatever the distance: large countries, legal constraints.
	Overrides map[string]string
	// DB maps addresses to countries (DB-IP or MaxMind country layout);
	// nil skips the lookup.
	DB      *maxminddb.Reader
	Default string

	// orders memoizes byDistance per placement key ("r:name" or
	// "c:XX"): the answer depends only on the key and the fields above,
	// which must not change once the Locator is in use.
	orders sync.Map // string -> []string
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
func (l *Locator) regionOrder(r *Region) []string {
	return l.memo("r:"+r.Name, func() []string { return l.byDistance(r.Lat, r.Lon, r.Name) })
}

// countryOrder is every region by distance from the country's centroid,
// its override first; nil when the country is neither in the centroid
// table nor overridden.
func (l *Locator) countryOrder(cc string) []string {
	first := l.Overrides[cc]
	if c, ok := countryCentroids[cc]; ok {
		return l.memo("c:"+cc, func() []string { return l.byDistance(c[0], c[1], first) })
	}
	if r := l.region(first); r != nil {
		return l.regionOrder(r)
	}
	return nil
}

func (l *Locator) memo(key string, compute func() []string) []string {
	if v, ok := l.orders.Load(key); ok {
		return v.([]string)
	}
	v, _ := l.orders.LoadOrStore(key, compute())
	return v.([]string)
}

func (l *Locator) region(name string) *Region {
	for i := range l.Regions {
		if l.Regions[i].Name == name {
			return &l.Regions[i]
		}
	}
	return nil
}

// byDistance sorts regions by great-circle distance from (lat, lon), with
// first (if a region) at the front.
func (l *Locator) byDistance(lat, lon float64, first string) []string {
	type rd struct {
		name string
		d    float64
	}
	rs := make([]rd, len(l.Regions))
	for i, r := range l.Regions {
		rs[i] = rd{r.Name, haversineKm(lat, lon, r.Lat, r.Lon)}
		if r.Name == first {
			rs[i].d = -1
		}
	}
	slices.SortStableFunc(rs, func(a, b rd) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out
}

// haversineKm is the great-circle distance between two points.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}
