package kubecluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// start runs a node process with its log in logs/NAME.log and its PID in
// pids/NAME.pid, so Down finds it from another process. Detached, it
// outlives the caller (make k8s); else it dies with it.
func (c *Cluster) start(name, path string, args ...string) error {
	return c.startWithEnv(name, path, nil, args...)
}

// startWithEnv is start with env added to the process's environment.
func (c *Cluster) startWithEnv(name, path string, env []string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(c.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the log of %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"), env...)
	if c.cfg.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reaps it; Down stops it by PID
		close(exited)
	}()
	c.exited[name] = exited
	c.children = append(c.children, cmd.Process)
	return os.WriteFile(filepath.Join(c.Dir, "pids", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// logTail is the end of a process's log, for an error message.
func (c *Cluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// running reports whether the process named was started by this Cluster
// and has not exited. (Its command line is no test: until its exec, a
// child still shows its parent's.)
func (c *Cluster) running(name string) bool {
	exited, ok := c.exited[name]
	if !ok {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

func readPID(dir, name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pids", name+".pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// ownedBy reports whether pid runs with dir in its command line: a node
// process of that cluster, not a recycled PID.
func ownedBy(pid int, dir string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if f := strings.Fields(string(state)); len(f) > 2 && f[2] == "Z" {
		return false
	}
	return strings.Contains(string(cmd), dir)
}

// stopPID sends SIGTERM, waits up to grace for the process to go, then
// sends SIGKILL.
func stopPID(pid int, dir string, grace time.Duration) {
	if !ownedBy(pid, dir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && ownedBy(pid, dir) {
		time.Sleep(50 * time.Millisecond)
	}
	if ownedBy(pid, dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// clusterProcesses lists the processes of the cluster in dir: those with
// dir in their command line (the node's services, containerd's shims) and
// those in its cgroups (the containers).
func clusterProcesses(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ownedBy(pid, dir) {
			out = append(out, pid)
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if strings.Contains(string(cg), "/"+cgroupRoot+"/") || strings.Contains(string(cg), "/"+cgroupRoot+"\n") {
			out = append(out, pid)
		}
	}
	return out
}

// killChildren sends SIGKILL to every process this Cluster started.
func (c *Cluster) killChildren() {
	for _, p := range c.children {
		_ = p.Kill()
	}
}
