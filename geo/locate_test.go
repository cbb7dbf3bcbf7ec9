package geo

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/sentimentpro/sentiment/geo/regions"
	"github.com/sentimentpro/sentiment/internal/testenv"
)

var testRegions = []regions.Region{{Name: "us-east", Lat: 38.9, Lon: -77.0}, {Name: "eu-west", Lat: 53.3, Lon: -6.3}, {Name: "ap-south", Lat: 19.1, Lon: 72.9}}

// writeMMDB builds a tiny country database mapping CIDRs (loopback ones
// included) to country records, in the DB-IP layout or the MaxMind one.
func writeMMDB(t *testing.T, maxmind bool, nets map[string]string) *maxminddb.Reader {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "test-country", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, cc := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"country_code": mmdbtype.String(cc)}
		if maxmind {
			rec = mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "test.mmdb")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := maxminddb.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOrder(t *testing.T) {
	for _, maxmind := range []bool{false, true} {
		db := writeMMDB(t, maxmind, map[string]string{
			"127.0.1.0/24": "DE", "127.0.2.0/24": "IN", "127.0.3.0/24": "US", "127.0.4.0/24": "AU",
			"127.0.5.0/24": "RU", "127.0.6.0/24": "ZZ", "2001:db8::/32": "JP",
		})
		l := &Locator{Regions: testRegions, DB: db, Default: "us-east", Overrides: map[string]string{"RU": "eu-west"}}
		f := func(hint, ip string, want []string, how string) {
			t.Helper()
			var addr netip.Addr
			if ip != "" {
				addr = netip.MustParseAddr(ip)
			}
			got, gotHow := l.Order(hint, addr)
			if !slices.Equal(got, want) || gotHow != how {
				t.Errorf("maxmind=%v hint %q ip %s: %v (%s), want %v (%s)", maxmind, hint, ip, got, gotHow, want, how)
			}
		}
		f("ap-south", "127.0.1.1", []string{"ap-south", "eu-west", "us-east"}, "hint") // hint wins over the address
		f("", "127.0.1.1", []string{"eu-west", "ap-south", "us-east"}, "country:DE")   // Frankfurt is nearer Mumbai than Virginia
		f("", "127.0.2.9", []string{"ap-south", "eu-west", "us-east"}, "country:IN")
		f("", "127.0.3.3", []string{"us-east", "eu-west", "ap-south"}, "country:US")
		f("", "127.0.4.4", []string{"ap-south", "eu-west", "us-east"}, "country:AU")
		f("", "127.0.5.5", []string{"eu-west", "ap-south", "us-east"}, "country:RU") // override first, then by distance
		f("", "2001:db8::1", []string{"ap-south", "eu-west", "us-east"}, "country:JP")
		f("", "127.0.6.6", []string{"us-east", "eu-west", "ap-south"}, "default") // unknown country, no centroid
		f("", "10.9.9.9", []string{"us-east", "eu-west", "ap-south"}, "default")  // not in the database
		f("mars-1", "", []string{"us-east", "eu-west", "ap-south"}, "default")    // unknown hint
	}
}

// TestDBIPDatabase places well-known public addresses with the real DB-IP
// country database that `make geoip` fetches.
func TestDBIPDatabase(t *testing.T) {
	db, err := maxminddb.Open(testenv.GeoIPDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := &Locator{Regions: testRegions, DB: db, Default: "us-east"}
	for addr, want := range map[string]struct{ country, first string }{
		"8.8.8.8":       {"US", "us-east"},  // Google DNS
		"193.0.6.139":   {"NL", "eu-west"},  // RIPE NCC, Amsterdam
		"202.12.29.175": {"AU", "ap-south"}, // APNIC, Brisbane
		"127.0.0.1":     {"", "us-east"},    // not in the database: the default
	} {
		a := netip.MustParseAddr(addr)
		if got := l.Country(a); got != want.country {
			t.Errorf("Country(%s) = %q, want %q", addr, got, want.country)
		}
		if order, how := l.Order("", a); order[0] != want.first {
			t.Errorf("Order(%s) = %v (%s), want %s first", addr, order, how, want.first)
		}
	}
}
