package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// passwordVia says how a mount gets the server's password.
type passwordVia int

const (
	// viaSecretsFile writes a 0600 secrets file and passes --secrets-file.
	viaSecretsFile passwordVia = iota
	// viaEnv sets CLOUDMOUNT_PASSWORD for the command.
	viaEnv
	// viaNothing gives no password at all.
	viaNothing
)

// MountOptions says how mountServer runs the binary. The zero value is the
// background form `cloudmount mount URL MNT --flags` with a fresh mountpoint,
// a fresh cache directory and a secrets file.
type MountOptions struct {
	// Foreground adds -f: the daemon is the child the harness started.
	Foreground bool
	// OForm uses `cloudmount URL MNT -o opt,...` (the mount(8) form) for the
	// harness's own settings instead of `mount` and --flags.
	OForm bool
	// Args are extra arguments after the mountpoint.
	Args []string
	// Dir is the mountpoint; "" makes a fresh empty directory.
	Dir string
	// CacheDir is the cache directory; "" makes a fresh one.
	CacheDir string
	// Password says how the password is passed.
	Password passwordVia
	// URL overrides the server's URL (user in the URL, say).
	URL string
	// Credential runs the binary as another user; nil runs it as the test.
	Credential *syscall.Credential
	// Env is added to the command's environment.
	Env []string
	// SecretsMode is the secrets file's mode; 0 means 0600.
	SecretsMode os.FileMode
}

// Mount is a mounted cloudmount daemon, unmounted by t.Cleanup whatever
// the test's outcome.
type Mount struct {
	// Dir is the mountpoint.
	Dir string
	// CacheDir is the daemon's cache directory (reused by Remount).
	CacheDir string
	// LogFile is the daemon's log (its stderr for -f mounts).
	LogFile string
	// Server is what is mounted.
	Server *Server

	opts MountOptions
	env  []string // the mount command's environment
	pid  int      // the daemon
	fg   *proc    // the daemon, for -f mounts
	done bool     // unmounted by the test itself
}

// mountServer mounts srv with the built binary and waits until the mount is
// in /proc/self/mountinfo. Any failure fails the test.
func mountServer(t *testing.T, srv *Server, opts MountOptions) *Mount {
	t.Helper()
	m, out, err := tryMount(t, srv, opts)
	if err != nil {
		// The cleanup shows the daemon log; with -f, out is that log.
		if opts.Foreground {
			out = ""
		}
		t.Fatalf("%v\n%s", err, out)
	}
	return m
}

// tryMount runs the mount command and returns its output and, when it did
// not end with a mounted daemon, an error. Whatever it leaves behind is
// cleaned up by t.Cleanup.
func tryMount(t *testing.T, srv *Server, opts MountOptions) (*Mount, string, error) {
	t.Helper()
	needMountable(t)
	tmp := t.TempDir()
	if opts.Credential != nil {
		// The other user must reach its mountpoint and files.
		for _, d := range []string{filepath.Dir(tmp), tmp} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(tmp, "mnt")
		mkdirOwned(t, opts.Dir, 0o755, opts.Credential)
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(tmp, "cache")
		mkdirOwned(t, opts.CacheDir, 0o700, opts.Credential)
	}
	logs := filepath.Join(tmp, "logs")
	mkdirOwned(t, logs, 0o755, opts.Credential)
	m := &Mount{Dir: opts.Dir, CacheDir: opts.CacheDir, LogFile: filepath.Join(logs, "daemon.log"), Server: srv, opts: opts}
	rememberMountDir(m.Dir)
	t.Cleanup(func() { m.cleanup(t) })

	cmd := m.command(t, tmp)
	out, err := m.runMountCmd(t, cmd, strings.Join(cmd.Args, " "))
	return m, out, err
}

// runMountCmd runs the mount command cmd for m (its Args, Env, Stdin and
// SysProcAttr set; where its output goes is decided here) and returns the
// output to show and, unless it ended with a mounted daemon, an error;
// cmdline names the command in errors. With -f the daemon is the child
// started here, logging to m.LogFile, and the mount is waited for up to
// 60s; otherwise the command returns once the mount is ready, and the
// daemon it left is looked up. The SFTP, Tahoe and WebDAV mounts share it.
func (m *Mount) runMountCmd(t *testing.T, cmd *exec.Cmd, cmdline string) (string, error) {
	t.Helper()
	if m.opts.Foreground {
		logf, err := os.Create(m.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		chownTo(t, m.LogFile, m.opts.Credential)
		cmd.Stdout, cmd.Stderr = logf, logf
		p, err := startProc("cloudmount -f", cmd)
		logf.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.fg, m.pid = p, p.pid()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, ok := mountedAt(m.Dir); ok {
				return "", nil
			}
			if p.exited() {
				return tailFile(m.LogFile, 40), fmt.Errorf("%s exited before mounting: %v", cmdline, p.waitErr)
			}
			if time.Now().After(deadline) {
				return tailFile(m.LogFile, 40), fmt.Errorf("%s did not mount within 60s", cmdline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	before := binaryProcs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bg := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	bg.Env, bg.Stdin, bg.SysProcAttr = cmd.Env, cmd.Stdin, cmd.SysProcAttr
	out, err := bg.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", cmdline, err)
	}
	// The command returns once the mount is ready: no waiting here.
	if _, ok := mountedAt(m.Dir); !ok {
		return string(out), fmt.Errorf("%s returned success but %s is not in /proc/self/mountinfo", cmdline, m.Dir)
	}
	if m.pid = m.findDaemon(before); m.pid == 0 {
		return string(out), fmt.Errorf("mounted, but no single daemon process of %s serves %s", binPath, m.Dir)
	}
	return string(out), nil
}

// checkMountFailed checks the outcome of a mount that must fail (what
// names it): a non-zero exit, a message, nothing mounted, no daemon left.
func checkMountFailed(t *testing.T, m *Mount, out string, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a failure; output:\n%s", what, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("the mount failed without a non-zero exit: %v", err)
	}
	if _, ok := mountedAt(m.Dir); ok {
		t.Errorf("the mount command failed but %s is mounted", m.Dir)
	}
	if n := len(daemonsOf(m.Dir)); n > 0 {
		t.Errorf("the mount command failed but %d daemon(s) of %s still run", n, m.Dir)
	}
	if strings.TrimSpace(out) == "" {
		t.Errorf("the mount failed with no message")
	}
}

// daemonsOf lists the processes of the built binary that have dir in
// their command line.
func daemonsOf(dir string) []int {
	var pids []int
	for _, pid := range binaryProcs() {
		if slices.Contains(procCmdline(pid), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// newHomeMount is the Mount of a daemon that runs with a HOME of its own
// (the SFTP and Tahoe suites), made in tmp with fresh directories for
// whichever of *dir, *cacheDir and *home are "" (filled in), its log
// tmp/daemon.log; t.Cleanup cleans up after it.
func newHomeMount(t *testing.T, tmp string, srv *Server, foreground bool, dir, cacheDir, home *string) *Mount {
	t.Helper()
	for _, d := range []struct {
		name  *string
		fresh string
		mode  os.FileMode
	}{{dir, "mnt", 0o755}, {cacheDir, "cache", 0o700}, {home, "home", 0o700}} {
		if *d.name == "" {
			*d.name = filepath.Join(tmp, d.fresh)
			mkdirOwned(t, *d.name, d.mode, nil)
		}
	}
	m := &Mount{Dir: *dir, CacheDir: *cacheDir, LogFile: filepath.Join(tmp, "daemon.log"), Server: srv,
		opts: MountOptions{Foreground: foreground, Dir: *dir, CacheDir: *cacheDir}}
	rememberMountDir(m.Dir)
	t.Cleanup(func() { m.cleanup(t) })
	return m
}

// homeEnv is the test's environment without a password, HOME, the XDG
// directories and the variables drop names ("NAME="), with HOME=home.
func homeEnv(home string, drop ...string) []string {
	drop = append([]string{"CLOUDMOUNT_PASSWORD=", "HOME=", "XDG_CONFIG_HOME=", "XDG_CACHE_HOME="}, drop...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return slices.ContainsFunc(drop, func(k string) bool { return strings.HasPrefix(kv, k) })
	})
	return append(env, "HOME="+home)
}

// sysProcAttr runs a command as the mount's user, if it has one.
func (m *Mount) sysProcAttr() *syscall.SysProcAttr {
	if m.opts.Credential == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: m.opts.Credential}
}

// command builds the mount command line and its environment.
func (m *Mount) command(t *testing.T, tmp string) *exec.Cmd {
	t.Helper()
	srv, opts := m.Server, m.opts
	url := opts.URL
	if url == "" {
		url = srv.URL
	}
	settings := [][2]string{{"cache-dir", m.CacheDir}}
	if u := mustURL(t, url); u.User == nil {
		settings = append(settings, [2]string{"user", srv.User})
	}
	if !opts.Foreground {
		settings = append(settings, [2]string{"log-file", m.LogFile})
	}
	env := append(os.Environ(), opts.Env...)
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "CLOUDMOUNT_PASSWORD=") })
	switch opts.Password {
	case viaSecretsFile:
		secrets := filepath.Join(tmp, "secrets")
		mode := opts.SecretsMode
		if mode == 0 {
			mode = 0o600
		}
		writeSecrets(t, secrets, mode, url, srv.User, srv.Password)
		chownTo(t, secrets, opts.Credential)
		settings = append(settings, [2]string{"secrets-file", secrets})
	case viaEnv:
		env = append(env, "CLOUDMOUNT_PASSWORD="+srv.Password)
	}
	if opts.Credential != nil {
		env = append(env, "HOME="+filepath.Join(tmp, "logs"))
	}
	m.env = env
	var args []string
	if opts.OForm {
		var o []string
		for _, s := range settings {
			v := s[1]
			if strings.ContainsAny(v, `,"`) {
				// mount(8) syntax: quote a value with commas.
				v = `"` + v + `"`
			}
			o = append(o, strings.ReplaceAll(s[0], "-", "_")+"="+v)
		}
		args = []string{url, m.Dir, "-o", strings.Join(o, ",")}
	} else {
		args = []string{"mount", url, m.Dir}
		for _, s := range settings {
			args = append(args, "--"+s[0], s[1])
		}
	}
	if opts.Foreground {
		args = append(args, "-f")
	}
	args = append(args, "-v")
	args = append(args, opts.Args...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = env
	cmd.SysProcAttr = m.sysProcAttr()
	return cmd
}

// writeSecrets writes a secrets file with one line.
func writeSecrets(t testing.TB, file string, mode os.FileMode, url, user, password string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(url+" "+user+" "+password+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
}

// mkdirOwned makes a directory, owned by cred's user when cred is set.
func mkdirOwned(t testing.TB, dir string, mode os.FileMode, cred *syscall.Credential) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	chownTo(t, dir, cred)
}

// chownTo gives a file to cred's user; nothing when cred is nil.
func chownTo(t testing.TB, name string, cred *syscall.Credential) {
	t.Helper()
	if cred == nil {
		return
	}
	if err := os.Chown(name, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
}

// findDaemon finds the daemon serving m.Dir among the binary's processes
// that were not running before the mount command.
func (m *Mount) findDaemon(before []int) int {
	var found []int
	for _, pid := range binaryProcs() {
		if slices.Contains(before, pid) {
			continue
		}
		if slices.Contains(procCmdline(pid), m.Dir) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0
	}
	return found[0]
}

// PID is the daemon's process ID.
func (m *Mount) PID() int { return m.pid }

// PeakRSS is the daemon's peak resident set size (VmHWM) in bytes.
func (m *Mount) PeakRSS(t testing.TB) int64 {
	t.Helper()
	n, err := peakRSS(m.pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Path is the path of the slash-separated rel inside the mount.
func (m *Mount) Path(rel string) string {
	return filepath.Join(m.Dir, filepath.FromSlash(rel))
}

// daemonAlive reports whether the daemon still runs (a zombie child of an
// -f mount counts as gone).
func (m *Mount) daemonAlive() bool {
	if m.fg != nil {
		return !m.fg.exited()
	}
	return m.pid != 0 && isBinary(m.pid)
}

// waitDaemonExit waits up to d for the daemon to end.
func (m *Mount) waitDaemonExit(d time.Duration) bool {
	if m.fg != nil {
		return m.fg.wait(d)
	}
	deadline := time.Now().Add(d)
	for m.daemonAlive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// Unmount ends the mount the way a user does, with `cloudmount unmount`
// (how == "cloudmount") or `fusermount3 -u` (how == "fusermount3"), and
// checks that the daemon ends and nothing stays mounted.
func (m *Mount) Unmount(t testing.TB, how string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	switch how {
	case "cloudmount":
		cmd = exec.CommandContext(ctx, binPath, "unmount", m.Dir)
	case "fusermount3":
		cmd = exec.CommandContext(ctx, "fusermount3", "-u", m.Dir)
	default:
		t.Fatalf("Unmount: unknown way %q", how)
	}
	cmd.SysProcAttr = m.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if _, ok := mountedAt(m.Dir); ok {
		t.Fatalf("%s succeeded but %s is still mounted", strings.Join(cmd.Args, " "), m.Dir)
	}
	if !m.waitDaemonExit(2 * time.Minute) {
		t.Fatalf("daemon %d still runs 2 minutes after unmount", m.pid)
	}
	if m.fg != nil && m.fg.waitErr != nil {
		t.Errorf("cloudmount -f exited with %v after unmount:\n%s", m.fg.waitErr, tailFile(m.LogFile, 20))
	}
	m.done = true
}

// Remount unmounts and mounts the same server again on the same mountpoint
// with the same options and cache directory, or a fresh cache directory
// when freshCache is set.
func (m *Mount) Remount(t *testing.T, freshCache bool) *Mount {
	t.Helper()
	m.Unmount(t, "fusermount3")
	opts := m.opts
	opts.Dir = m.Dir
	if freshCache {
		opts.CacheDir = ""
	}
	return mountServer(t, m.Server, opts)
}

// cleanup unmounts (lazily if it must) and makes sure the daemon is gone.
// It only ever signals the daemon this mount started.
func (m *Mount) cleanup(t *testing.T) {
	// After the test's own Unmount, whatever is mounted on Dir now belongs
	// to a later Mount (Remount), which cleans up after itself.
	if _, ok := mountedAt(m.Dir); ok && !m.done {
		m.verifyAtEnd(t)
		if out, err := exec.Command("fusermount3", "-u", m.Dir).CombinedOutput(); err != nil {
			t.Logf("cleanup: fusermount3 -u %s: %v %s; unmounting lazily", m.Dir, err, out)
			if out, err := exec.Command("fusermount3", "-uz", m.Dir).CombinedOutput(); err != nil {
				t.Errorf("cleanup: fusermount3 -uz %s: %v %s", m.Dir, err, out)
			}
		}
	}
	if m.pid == 0 && m.fg == nil {
		// The mount command failed: a daemon it left behind is still ours.
		m.pid = m.findDaemon(nil)
	}
	if m.daemonAlive() && !m.waitDaemonExit(30*time.Second) {
		t.Errorf("cleanup: daemon %d did not exit after unmount; killing it", m.pid)
		if m.fg != nil {
			_ = m.fg.stop(5 * time.Second)
		} else if isBinary(m.pid) {
			_ = syscall.Kill(m.pid, syscall.SIGKILL)
		}
	}
	if m.fg != nil {
		_ = m.fg.stop(5 * time.Second)
	}
	if t.Failed() {
		t.Logf("daemon log %s (tail):\n%s", m.LogFile, tailFile(m.LogFile, 60))
	}
}

// String describes the mount for messages.
func (m *Mount) String() string {
	return fmt.Sprintf("%s on %s (pid %d)", m.Server.URL, m.Dir, m.pid)
}

// verifyAtEnd ends every test that leaves its mount mounted and did not
// fail: `cloudmount sync`, then `cloudmount verify` of the whole mount.
// A file whose server bytes do not have the hash the mount believes in
// fails the test. Where the sync cannot finish (a test that left the
// server stopped, or a failure it provoked), there is nothing to verify.
func (m *Mount) verifyAtEnd(t *testing.T) {
	if t.Failed() || !m.daemonAlive() {
		return
	}
	if out, code, err := m.ctl(2*time.Minute, "sync", "--timeout", "60s", m.Dir); err != nil || code != 0 {
		t.Logf("cleanup: no verify: cloudmount sync: exit %d %v: %s", code, err, strings.TrimSpace(out))
		return
	}
	out, code, err := m.ctl(5*time.Minute, "verify", "--json", m.Dir)
	if err != nil {
		t.Errorf("cleanup: cloudmount verify: %v\n%s", err, out)
		return
	}
	var rep struct {
		OK         bool `json:"ok"`
		Checked    int  `json:"checked"`
		Mismatches []struct {
			Path, Want, Got string
		} `json:"mismatches"`
		Errors []struct {
			Path  string `json:"path"`
			Error string `json:"error"`
		} `json:"errors"`
	}
	// The report is the first JSON value; the summary on stderr follows it.
	if jerr := json.NewDecoder(strings.NewReader(out[max(strings.Index(out, "{"), 0):])).Decode(&rep); jerr != nil {
		t.Errorf("cleanup: cloudmount verify (exit %d): %v\n%s", code, jerr, out)
		return
	}
	for _, mm := range rep.Mismatches {
		t.Errorf("cleanup: cloudmount verify: %s on the server has sha256 %s, the mount believes %s", mm.Path, mm.Got, mm.Want)
	}
	for _, e := range rep.Errors {
		t.Logf("cleanup: cloudmount verify could not read %s: %s", e.Path, e.Error)
	}
}
