package integration

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process that the harness started, in a process group of its own
// so that its children (Apache's workers) can be stopped with it.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // valid once done is closed
}

// startProc starts cmd in its own process group and reaps it in the background.
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	liveProcsMu.Lock()
	liveProcs = append(liveProcs, p)
	liveProcsMu.Unlock()
	return p, nil
}

var (
	liveProcsMu sync.Mutex
	// liveProcs are all processes the harness started, for emergencyCleanup.
	liveProcs []*proc
)

// pid is the process ID of the started process.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended (and been reaped).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to end and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills the process group. It
// only ever signals this process and the members of its process group.
func (p *proc) stop(grace time.Duration) error {
	pgid := p.pid()
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !p.wait(grace) {
			// The leader is not reaped yet, so the group ID is still ours.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if !p.wait(10 * time.Second) {
				return fmt.Errorf("%s (pid %d) did not end after SIGKILL", p.name, pgid)
			}
		}
	}
	// Members of the group that outlived the leader: the group ID cannot be
	// reused while they exist, so they are still the leader's descendants.
	for _, pid := range groupMembers(pgid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// groupMembers lists the processes whose process group is pgid.
func groupMembers(pgid int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := procPgid(pid); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procPgid reads the process group of pid from /proc/PID/stat.
func procPgid(pid int) (int, error) { return procStatField(pid, 2) }

// procStatField reads field i (0: state) of /proc/PID/stat after the
// command name, as a number.
func procStatField(pid, i int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[end+1:])
	if len(f) <= i {
		return 0, errors.New("malformed stat")
	}
	return strconv.Atoi(f[i])
}

// isBinary reports whether pid runs the cloudmount binary built for this run.
func isBinary(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	return exe == binPath || exe == binPath+" (deleted)"
}

// binaryProcs lists the running processes of the binary built for this run.
func binaryProcs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isBinary(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procCmdline returns the argv of pid.
func procCmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// peakRSS returns VmHWM of pid in bytes: the largest resident set it has had.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	// Dev is the device number "major:minor"; for FUSE the minor names the
	// connection in /sys/fs/fuse/connections.
	Dev                          string
	Dir, FSType, Source, Options string
}

// mounts parses /proc/self/mountinfo.
func mounts() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 2 {
			continue
		}
		e := mountEntry{Dev: f[2], Dir: unescapeMountinfo(f[4]), FSType: g[0], Source: unescapeMountinfo(g[1]), Options: f[5]}
		if len(g) > 2 {
			e.Options += "," + g[2]
		}
		out = append(out, e)
	}
	return out, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountedAt returns the mount entry for dir, if something is mounted there.
func mountedAt(dir string) (mountEntry, bool) {
	ms, _ := mounts()
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Dir == dir {
			return ms[i], true
		}
	}
	return mountEntry{}, false
}

var (
	mountDirsMu sync.Mutex
	// mountDirs are all mountpoints this process has used, for the final check.
	mountDirs = map[string]bool{}
)

// rememberMountDir records a mountpoint for leftoverMounts.
func rememberMountDir(dir string) {
	mountDirsMu.Lock()
	defer mountDirsMu.Unlock()
	mountDirs[filepath.Clean(dir)] = true
}

// leftoverMounts lists the mountpoints used by this process that are still mounted.
func leftoverMounts() []string {
	mountDirsMu.Lock()
	defer mountDirsMu.Unlock()
	var left []string
	for dir := range mountDirs {
		if _, ok := mountedAt(dir); ok {
			left = append(left, dir)
		}
	}
	return left
}

// abortFUSE aborts the FUSE connection of the mount at dir, which makes
// every request hanging on it fail with ENOTCONN. It reads the connection
// from mountinfo, because a stat of a hung mount would hang too.
func abortFUSE(dir string) error {
	e, ok := mountedAt(dir)
	if !ok {
		return fmt.Errorf("%s is not mounted", dir)
	}
	_, minor, _ := strings.Cut(e.Dev, ":")
	return os.WriteFile(filepath.Join("/sys/fs/fuse/connections", minor, "abort"), []byte("1"), 0)
}

// emergencyCleanup runs shortly before `go test -timeout` would panic, when
// no t.Cleanup will run any more: it aborts and lazily unmounts this run's
// mounts, stops the servers and kills the daemons of this run's binary.
func emergencyCleanup() {
	fmt.Fprintln(os.Stderr, "integration: the test timeout is near; cleaning up mounts and processes")
	for _, dir := range leftoverMounts() {
		_ = abortFUSE(dir)
		_ = exec.Command("fusermount3", "-uz", dir).Run()
	}
	liveProcsMu.Lock()
	procs := slices.Clone(liveProcs)
	liveProcsMu.Unlock()
	for _, p := range procs {
		_ = p.stop(2 * time.Second)
	}
	for _, pid := range binaryProcs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
