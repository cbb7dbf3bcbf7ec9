package kubecluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// sysctls are the kernel settings the node changes: the kubelet's kernel
// tunables, forwarding for Service traffic between pods, and the bridge's
// netfilter hooks that kube-proxy relies on.
var sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
}

// fixedPaths are the host paths containerd, runc, the CNI plugins and the
// kubelet write whatever they are told: what did not exist before the
// cluster is removed after it.
var fixedPaths = []string{
	"/run/containerd", "/run/runc", "/var/lib/cni", "/var/lib/kubelet",
	"/var/log/containers", "/var/log/pods", "/var/lib/containerd", "/opt/containerd",
	"/etc/cni", "/opt/cni", "/run/calico", "/var/run/kubernetes",
}

// hierarchies are the cgroup hierarchies mounted on this machine: the
// directories under /sys/fs/cgroup (cgroup v1 with a v2 "unified" mount,
// or a v2 root alone).
func hierarchies() []string {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return []string{cgroupFS} // cgroup v2 alone
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(cgroupFS, e.Name()))
		}
	}
	return out
}

const cgroupFS = "/sys/fs/cgroup"

// hostState is what the machine had before the cluster changed it,
// written to the state directory first so Down can put it back, also
// from another process (make k8s-down) or after a crash.
type hostState struct {
	Sysctls   map[string]string `json:"sysctls"`
	Paths     []string          `json:"paths"`      // fixed paths that existed
	NetNS     []string          `json:"netns"`      // /run/netns/cni-… entries that existed
	NetNSDir  bool              `json:"netns_dir"`  // whether /run/netns existed
	NftTables []string          `json:"nft_tables"` // "family name" of every table
}

func readHostState() hostState {
	s := hostState{Sysctls: map[string]string{}}
	for _, k := range sysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			s.Sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); err == nil {
			s.Paths = append(s.Paths, p)
		}
	}
	s.NetNS = netnsEntries()
	_, err := os.Stat("/run/netns")
	s.NetNSDir = err == nil
	s.NftTables = nftTables()
	return s
}

// netnsEntries lists the network namespaces containerd names for pods
// (cni-…); other tests' namespaces on the same machine are theirs.
func netnsEntries() []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// nftTables lists every nftables table as "family name" (iptables-nft's
// tables among them).
func nftTables() []string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil
	}
	var tables []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	sort.Strings(tables)
	return tables
}

func (s hostState) save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func loadHostState(path string) (hostState, error) {
	var s hostState
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// restore puts back what the cluster changed on the host, given what it
// was before: sysctls, network namespaces, nftables tables and fixed host
// paths. It goes on past errors and returns them all.
func (s hostState) restore() error {
	var errs []error
	for _, name := range netnsEntries() {
		if !slices.Contains(s.NetNS, name) {
			p := filepath.Join("/run/netns", name)
			unmountUnder(p)
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, t := range nftTables() {
		if !slices.Contains(s.NftTables, t) {
			f := strings.Fields(t)
			if out, err := exec.Command("nft", "delete", "table", f[0], f[1]).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("nft delete table %s: %v: %s", t, err, out))
			}
		}
	}
	for _, p := range fixedPaths {
		if !slices.Contains(s.Paths, p) {
			unmountUnder(p)
			if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if !s.NetNSDir {
		_ = os.Remove("/run/netns") // only if empty: other tests may keep theirs there
	}
	for k, v := range s.Sysctls {
		p := filepath.Join("/proc/sys", k)
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("cannot restore %s: %w", k, err))
			}
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") || strings.HasSuffix(dir, "-") && strings.HasPrefix(mp, dir) {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Snapshot is what a cluster could leave behind on this machine, read so
// that a test can compare before and after: kernel settings, fixed host
// paths, network namespaces, links of the node's kind, nftables tables,
// mounts and cgroups of the cluster, and processes run from its state
// directory or in its cgroups.
type Snapshot struct {
	Sysctls   map[string]string
	Paths     []string
	NetNS     []string
	Links     []string
	NftTables []string
	Mounts    []string
	Cgroups   []string
	Processes []string
}

// TakeSnapshot reads the host as a cluster in dir would change it.
func TakeSnapshot(dir string) Snapshot {
	s := readHostState()
	snap := Snapshot{Sysctls: s.Sysctls, Paths: s.Paths, NetNS: s.NetNS, NftTables: s.NftTables}
	snap.Links = nodeLinks()
	for _, d := range []string{dir, "/run/netns/cni-", "/var/lib/kubelet", "/run/containerd"} {
		snap.Mounts = append(snap.Mounts, mountsUnder(d)...)
	}
	for _, h := range hierarchies() {
		if _, err := os.Stat(filepath.Join(h, cgroupRoot)); err == nil {
			snap.Cgroups = append(snap.Cgroups, filepath.Join(h, cgroupRoot))
		}
	}
	for _, pid := range clusterProcesses(dir) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		snap.Processes = append(snap.Processes, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return snap
}

// Diff describes how two snapshots differ, "" when they do not.
func (s Snapshot) Diff(after Snapshot) string {
	var b strings.Builder
	for k, v := range s.Sysctls {
		if after.Sysctls[k] != v {
			fmt.Fprintf(&b, "sysctl %s: %s before, %s after\n", k, v, after.Sysctls[k])
		}
	}
	for _, l := range []struct {
		what          string
		before, after []string
	}{
		{"host path", s.Paths, after.Paths}, {"network namespace", s.NetNS, after.NetNS},
		{"link", s.Links, after.Links}, {"nftables table", s.NftTables, after.NftTables},
		{"mount", s.Mounts, after.Mounts}, {"cgroup", s.Cgroups, after.Cgroups},
		{"process", s.Processes, after.Processes},
	} {
		for _, x := range l.after {
			if !slices.Contains(l.before, x) {
				fmt.Fprintf(&b, "%s left behind: %s\n", l.what, x)
			}
		}
		for _, x := range l.before {
			if !slices.Contains(l.after, x) {
				fmt.Fprintf(&b, "%s gone: %s\n", l.what, x)
			}
		}
	}
	return b.String()
}

// nodeLinks lists the links a node makes: its bridge and the veth pairs
// the CNI bridge plugin adds for pods.
func nodeLinks() []string {
	entries, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range entries {
		if e.Name() == Bridge || strings.HasPrefix(e.Name(), "veth") {
			out = append(out, e.Name())
		}
	}
	return out
}
