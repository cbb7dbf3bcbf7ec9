package kubecluster

import (
	"strings"
	"testing"
)

func TestSnapshotDiff(t *testing.T) {
	before := Snapshot{Sysctls: map[string]string{"net/ipv4/ip_forward": "0"}, Links: []string{"eth0"}, NftTables: []string{"inet keep"}}
	if d := before.Diff(before); d != "" {
		t.Errorf("a snapshot differs from itself: %s", d)
	}
	after := Snapshot{Sysctls: map[string]string{"net/ipv4/ip_forward": "1"}, Links: []string{"eth0", Bridge},
		Mounts: []string{"/run/netns/cni-1"}, Processes: []string{"42 containerd-shim-runc-v2"}}
	d := before.Diff(after)
	for _, want := range []string{"sysctl net/ipv4/ip_forward: 0 before, 1 after", "link left behind: " + Bridge,
		"mount left behind: /run/netns/cni-1", "process left behind: 42", "nftables table gone: inet keep"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/var/lib/a\040b`); got != "/var/lib/a b" {
		t.Errorf("got %q", got)
	}
}
