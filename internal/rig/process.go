package rig

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a child service process. Its output goes to LogPath.
type Process struct {
	Name    string
	Path    string
	Args    []string
	Env     []string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start launches the process. The child gets SIGKILL if the test binary
// dies, so a crashed test leaves no service behind.
func (p *Process) Start() error {
	if p.Running() {
		return fmt.Errorf("%s is already running", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open log for %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s: %w", p.Name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return nil
}

// PID returns the process ID, or 0 when not started.
func (p *Process) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process was started and has not exited.
func (p *Process) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the process exits.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process by PID, waits up to grace, then sends
// SIGKILL. Stopping a process that is not running does nothing.
func (p *Process) Stop(grace time.Duration) {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL and waits for the exit: a crash, not a shutdown.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// LogTail returns the last n bytes of the process log, for error messages.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// WaitFor polls ready every 50 ms until it returns nil, the process exits or
// timeout passes; the error then includes the process log tail.
func (p *Process) WaitFor(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", p.Name, p.err, p.LogTail(4000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %v; log:\n%s", p.Name, timeout, last, p.LogTail(4000))
}

// StartHTTPService starts bin as a child process with its log at logPath
// and waits until GET readyURL answers 200 to client (nil: a plain HTTP
// client; an https readyURL needs one trusting the service's CA). The
// caller stops it.
func StartHTTPService(name, bin string, args, env []string, logPath, readyURL string, client *http.Client) (*Process, error) {
	p := &Process{Name: name, Path: bin, Args: args, Env: env, LogPath: logPath}
	if err := p.Start(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: time.Second}
	}
	err := p.WaitFor(30*time.Second, func() error {
		resp, err := client.Get(readyURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", readyURL, resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

// ProcStatus reads a field such as "VmRSS:" or "VmHWM:" of a process from
// /proc, in bytes.
func ProcStatus(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}
