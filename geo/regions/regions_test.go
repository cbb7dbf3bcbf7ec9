package regions

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	rs, err := Parse("us-east=38.9,-77.0; eu-west=53.3,-6.3")
	if err != nil || len(rs) != 2 || rs[1].Name != "eu-west" || rs[1].Lon != -6.3 {
		t.Fatalf("%+v %v", rs, err)
	}
	for _, bad := range []string{"", "us-east", "us-east=1", "x=91,0", "x=0,181", "=1,2", "x=a,b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestHaversine(t *testing.T) {
	// Dublin to New York is about 5,100 km.
	if d := haversineKm(53.35, -6.26, 40.71, -74.0); d < 5000 || d > 5200 {
		t.Fatalf("Dublin-New York %.0f km", d)
	}
}

// TestByDistance: from Dublin, eu-west, then us-east, then ap-south; a
// region named first leads whatever its distance.
func TestByDistance(t *testing.T) {
	rs, _ := Parse(Default)
	if got := ByDistance(rs, 53.35, -6.26, ""); !slices.Equal(got, []string{"eu-west", "us-east", "ap-south"}) {
		t.Errorf("from Dublin: %v", got)
	}
	if got := ByDistance(rs, 53.35, -6.26, "ap-south"); !slices.Equal(got, []string{"ap-south", "eu-west", "us-east"}) {
		t.Errorf("from Dublin, ap-south first: %v", got)
	}
}
