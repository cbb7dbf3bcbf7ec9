// Package regions is the serving regions and where they are: parsing the
// -regions flag, and ordering regions by distance from a point. The geo
// router places clients with it; sentctl's dns-query builds Consul's
// failover order with it, without linking the router.
package regions

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Region is a serving region and where it is.
type Region struct {
	Name     string
	Lat, Lon float64
}

// Default is the three regions of the local stacks and their locations
// (Washington, Dublin, Mumbai), in Parse's format.
const Default = "us-east=38.9,-77.0;eu-west=53.3,-6.3;ap-south=19.1,72.9"

// Parse reads "us-east=38.9,-77.0;eu-west=53.3,-6.3".
func Parse(s string) ([]Region, error) {
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

// Find is the region named name in rs, or nil.
func Find(rs []Region, name string) *Region {
	for i := range rs {
		if rs[i].Name == name {
			return &rs[i]
		}
	}
	return nil
}

// ByDistance is every region's name by great-circle distance from (lat,
// lon), nearest first, with first (if a region) at the front.
func ByDistance(rs []Region, lat, lon float64, first string) []string {
	type rd struct {
		name string
		d    float64
	}
	ds := make([]rd, len(rs))
	for i, r := range rs {
		ds[i] = rd{r.Name, haversineKm(lat, lon, r.Lat, r.Lon)}
		if r.Name == first {
			ds[i].d = -1
		}
	}
	slices.SortStableFunc(ds, func(a, b rd) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	out := make([]string, len(ds))
	for i, r := range ds {
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
