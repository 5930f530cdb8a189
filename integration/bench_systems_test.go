//go:build bench

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchRole says what a system is in the comparison.
type benchRole string

const (
	// roleCloudmount is the system under test.
	roleCloudmount benchRole = "cloudmount"
	// rolePeer is another FUSE filesystem doing the same job.
	rolePeer benchRole = "peer"
	// roleLimit is what the hardware and the protocol allow (no FUSE).
	roleLimit benchRole = "limit"
)

// benchKind says how the workloads drive a system.
type benchKind int

const (
	// kindMount is a FUSE mount: the workloads use files and shell tools.
	kindMount benchKind = iota
	// kindLocal is a directory on the local disk, used like a mount.
	kindLocal
	// kindCurl is curl speaking WebDAV to the server directly.
	kindCurl
	// kindSFTP is sftp, scp and rsync over ssh to the SSH server directly.
	kindSFTP
)

// benchSystem is one column of the tables.
type benchSystem struct {
	// ID is the short name used in BENCH_SYSTEMS, the JSON and the chart.
	ID string
	// Label is the name in docs/bench.md.
	Label string
	// Role is cloudmount, a peer or a limit.
	Role benchRole
	// Server is the server the system talks to ("" for local disk).
	Server string
	// Unavailable says why the system could not be run ("" when it ran).
	Unavailable string
	// Command is how the system is started, for docs/bench.md.
	Command string

	kind benchKind
	// dir is the directory on disk behind the system: the server's
	// directory, or the local directory for local disk.
	dir string
	// mount mounts the system with the cache directory cache (a fresh
	// one when ""); kindMount only.
	mount func(t *testing.T, cache string) (*benchMount, error)
	// unmountDropsUploads: unmount does not wait for uploads still queued
	// (rclone mount, rclone#7309), so the workloads wait until the server
	// has everything before they unmount.
	unmountDropsUploads bool
	// serverKeepsMtimes: the server keeps the mtimes the mount sets
	// (SFTP), so a file whose upload is done has its source's mtime.
	serverKeepsMtimes bool
	web               *Server
	ssh               *sshServer
	// grid is the directory of the Tahoe grid behind the system (the
	// server's copy is checked through the web API); nil for the others.
	grid *tahoeDir
	// workloads, when set, are the only workloads the system runs.
	workloads []string
}

// benchEnv is everything a workload needs: the systems and the local fixtures.
type benchEnv struct {
	cfg     *benchConfig
	res     *benchResults
	systems []*benchSystem
	fx      *benchFixtures
	// lastTouch is when the rsync source tree was last touched.
	lastTouch time.Time
}

// benchMount is one mounted system (or the local directory).
type benchMount struct {
	// Dir is where the workload reads and writes.
	Dir string
	// CacheDir is the mount's cache, reused by a remount.
	CacheDir string
	// freshCache: the cache directory was made for this mount and is
	// removed when the run ends.
	freshCache bool
	// daemon returns the PID of the daemon process (0 if none).
	daemon func() int
	// unmount ends the mount and waits for the daemon to exit.
	unmount func() error
	// settle, when set, returns once the mount has handed the server
	// everything it was given (`cloudmount sync`).
	settle func() error
	closed bool
}

// close unmounts once; later calls do nothing.
func (m *benchMount) close() error {
	if m.closed || m.unmount == nil {
		m.closed = true
		return nil
	}
	m.closed = true
	return m.unmount()
}

// lookTool finds a program in $PATH or the sbin directories.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (`make bench` installs it)", name)
}

// lookTools checks several programs at once.
func lookTools(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := lookTool(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not installed: %s (`make bench` installs them)", strings.Join(missing, ", "))
	}
	return nil
}

// unavailable marks a system as not run. With CI set that is a failure.
func (e *benchEnv) unavailable(t *testing.T, sys *benchSystem, err error) {
	t.Helper()
	sys.Unavailable = oneLine(err.Error())
	if e.cfg.CI {
		t.Errorf("bench: CI is set, so this is a failure: %s cannot be run: %v", sys.ID, err)
	} else {
		t.Logf("bench: %s is not available: %v", sys.ID, err)
	}
}

// oneLine shortens a message to its first line, for tables.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// setupBench prepares the fixtures, starts the servers and decides which
// systems can run.
func setupBench(t *testing.T, cfg *benchConfig, res *benchResults) *benchEnv {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	env := &benchEnv{cfg: cfg, res: res}
	if err := checkDropCaches(); err != nil {
		res.note("Cold runs could not drop the page cache (%v): they are only as cold as a fresh mount makes them.", err)
		t.Logf("bench: %v", err)
	}
	env.fx = makeBenchFixtures(t, cfg.Sizes)

	all := benchSystemList(t, env)
	for _, s := range all {
		if cfg.wantSystem(s.ID) {
			env.systems = append(env.systems, s)
		}
	}
	if len(env.systems) == 0 {
		t.Fatalf("bench: no system selected (BENCH_SYSTEMS=%v)", cfg.systems)
	}
	for _, s := range env.systems {
		if s.Unavailable == "" && s.kind == kindMount {
			if err := probeMount(t, s); err != nil {
				env.unavailable(t, s, fmt.Errorf("mount failed: %w", err))
			}
		}
		res.addSystem(s)
	}
	return env
}

// probeMount mounts a system once and lists its root, so that a peer that
// cannot mount here is reported as not available rather than failing
// every workload.
func probeMount(t *testing.T, s *benchSystem) error {
	m, err := s.mount(t, "")
	if err != nil {
		return err
	}
	_, lerr := os.ReadDir(m.Dir)
	uerr := m.close()
	if m.freshCache {
		_ = os.RemoveAll(m.CacheDir)
	}
	return errors.Join(lerr, uerr)
}

// benchSystemList starts the servers the selected systems need and
// returns every system, in the order of the tables.
func benchSystemList(t *testing.T, env *benchEnv) []*benchSystem {
	t.Helper()
	cfg := env.cfg
	want := func(ids ...string) bool {
		for _, id := range ids {
			if cfg.wantSystem(id) {
				return true
			}
		}
		return false
	}
	var apache, rclone *Server
	var sshd *sshServer
	var apacheErr, rcloneErr, sshdErr error
	if want("cloudmount-apache", "davfs2", "rclone-full", "rclone-writes", "curl-apache") {
		if apacheErr = preflightApache(); apacheErr == nil {
			apache = startApache(t)
			placeServerFixtures(t, env.fx, apache.Dir, apache.uid, apache.gid)
		}
	}
	if want("cloudmount-rclone", "curl-rclone") {
		if rcloneErr = lookTools("rclone", "htpasswd"); rcloneErr == nil {
			rclone = startRclone(t)
			placeServerFixtures(t, env.fx, rclone.Dir, rclone.uid, rclone.gid)
		}
	}
	if want("cloudmount-sftp", "rclone-sftp", "sshfs", "sftp") {
		if sshd, sshdErr = startSSHD(t); sshdErr == nil {
			placeServerFixtures(t, env.fx, sshd.Dir, os.Getuid(), os.Getgid())
		}
	}
	var tahoeCM *tahoeDir
	var tahoeSFTPFrontend *tahoeSFTP
	var tahoeErr error
	if want("cloudmount-tahoe", "sshfs-tahoe") {
		tahoeCM, tahoeSFTPFrontend, tahoeErr = startTahoeBench(t, cfg.wantSystem("cloudmount-tahoe"), cfg.wantSystem("sshfs-tahoe"))
	}

	systems := []*benchSystem{
		cloudmountSystem("cloudmount-apache", apache, apacheErr),
		cloudmountSystem("cloudmount-rclone", rclone, rcloneErr),
		cloudmountSFTPSystem(sshd, sshdErr),
		davfsSystem(apache, apacheErr),
		rcloneMountSystem("full", apache, apacheErr),
		rcloneMountSystem("writes", apache, apacheErr),
		rcloneSFTPSystem(sshd, sshdErr),
		sshfsSystem(sshd, sshdErr),
		cloudmountTahoeSystem(tahoeCM, tahoeErr),
		sshfsTahoeSystem(tahoeSFTPFrontend, tahoeErr),
		localSystem(env.fx),
		curlSystem("curl-apache", apache, apacheErr),
		curlSystem("curl-rclone", rclone, rcloneErr),
		sftpSystem(sshd, sshdErr),
	}
	for _, s := range systems {
		if s.Unavailable != "" && cfg.wantSystem(s.ID) {
			reason := s.Unavailable
			s.Unavailable = ""
			env.unavailable(t, s, errors.New(reason))
		}
	}
	return systems
}

// preflightApache checks what startApache needs, so that a missing Apache
// makes its systems "not available" instead of skipping the whole run.
func preflightApache() error {
	if err := lookTools("apache2", "htpasswd"); err != nil {
		return err
	}
	for _, m := range apacheModules {
		if _, err := os.Stat(filepath.Join(apacheModDir, m[1])); err != nil {
			return fmt.Errorf("Apache module %s: %w", m[1], err)
		}
	}
	return nil
}

// serverLabel names a harness server in the tables.
func serverLabel(kind string) string {
	switch kind {
	case "apache":
		return "Apache mod_dav"
	case "rclone":
		return "rclone serve webdav"
	case "sshd":
		return "OpenSSH sshd"
	case "tahoe":
		return "Tahoe-LAFS grid"
	}
	return kind
}

// cloudmountSystem is cloudmount with default options on a WebDAV server.
func cloudmountSystem(id string, srv *Server, srvErr error) *benchSystem {
	kind := strings.TrimPrefix(id, "cloudmount-")
	s := &benchSystem{
		ID: id, Label: "cloudmount", Role: roleCloudmount, Server: serverLabel(kind), kind: kindMount, web: srv,
		Command: "cloudmount mount URL MNT --user alice --secrets-file FILE --cache-dir DIR -f   (default options; a fresh cache directory for every cold mount)",
	}
	if extra := benchExtraArgs(); len(extra) > 0 {
		s.Command = "cloudmount mount URL MNT --user alice --secrets-file FILE --cache-dir DIR -f " + strings.Join(extra, " ") +
			"   (BENCH_CLOUDMOUNT_ARGS; a fresh cache directory for every cold mount)"
	}
	switch {
	case srvErr != nil:
		s.Unavailable = srvErr.Error()
		return s
	case srv == nil:
		return s
	}
	s.dir = srv.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		return mountCloudmount(t, srv, cache)
	}
	return s
}

// benchExtraArgs are options for the WebDAV cloudmount mounts from
// BENCH_CLOUDMOUNT_ARGS (space-separated), to measure a setting against
// the defaults; the report's command line names them.
func benchExtraArgs() []string { return strings.Fields(os.Getenv("BENCH_CLOUDMOUNT_ARGS")) }

// mountCloudmount mounts srv with the harness, in the foreground so that
// the daemon is the process the harness started. The harness passes -v for
// its tests; --verbose=false after it restores the default log level.
func mountCloudmount(t *testing.T, srv *Server, cache string) (*benchMount, error) {
	m, out, err := tryMount(t, srv, MountOptions{Foreground: true, CacheDir: cache, Args: append([]string{"--verbose=false"}, benchExtraArgs()...)})
	if err != nil {
		if m != nil {
			out += "\n" + tailFile(m.LogFile, 20)
		}
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	return cloudmountBenchMount(m, cache == ""), nil
}

// cloudmountBenchMount is a harness mount (-f) as the benchmark drives it:
// the daemon is the harness's child; unmount is `cloudmount unmount`, then
// waiting until the daemon has exited.
func cloudmountBenchMount(m *Mount, freshCache bool) *benchMount {
	bm := &benchMount{Dir: m.Dir, CacheDir: m.CacheDir, freshCache: freshCache}
	bm.daemon = func() int {
		if m.daemonAlive() {
			return m.PID()
		}
		return 0
	}
	bm.unmount = func() error {
		cmd := exec.Command(binPath, "unmount", m.Dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cloudmount unmount %s: %v\n%s", m.Dir, err, out)
		}
		if !m.waitDaemonExit(5 * time.Minute) {
			return fmt.Errorf("cloudmount daemon %d still runs 5 minutes after unmount", m.PID())
		}
		m.done = true
		if m.fg != nil && m.fg.waitErr != nil {
			return fmt.Errorf("cloudmount -f exited with %v:\n%s", m.fg.waitErr, tailFile(m.LogFile, 20))
		}
		return nil
	}
	return bm
}

// cloudmountSFTPSystem is cloudmount with default options on the
// benchmark's sshd, the server of sshfs, rclone mount on sftp and the
// sftp/scp limit.
func cloudmountSFTPSystem(sshd *sshServer, sshdErr error) *benchSystem {
	s := &benchSystem{
		ID: "cloudmount-sftp", Label: "cloudmount", Role: roleCloudmount, Server: serverLabel("sshd"), kind: kindMount, ssh: sshd,
		Command: "cloudmount mount sftp://USER@127.0.0.1:PORT/DIR MNT --identity KEY --known-hosts FILE --ssh-config none --cache-dir DIR -f   " +
			"(default options, no ssh-agent, an empty HOME; a fresh cache directory for every cold mount)",
	}
	if sshdErr == nil {
		sshdErr = lookTools("fusermount3")
	}
	switch {
	case sshdErr != nil:
		s.Unavailable = sshdErr.Error()
		return s
	case sshd == nil:
		return s
	}
	s.dir = sshd.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		return mountCloudmountSFTP(t, sshd, cache)
	}
	return s
}

// mountCloudmountSFTP mounts the sshd's directory as the SFTP tests do
// (tryMountSFTP: the harness's key, a known_hosts file of its own,
// --ssh-config none, no agent, an empty HOME), in the foreground, with the
// default log level (--verbose=false after the harness's -v).
func mountCloudmountSFTP(t *testing.T, sshd *sshServer, cache string) (*benchMount, error) {
	e := &sftpEnv{SSHD: sshd.SSHD, User: LocalUser{Name: sshd.User, UID: os.Getuid(), GID: os.Getgid()}}
	srv := &Server{Kind: "sftp", User: sshd.User, Dir: sshd.Dir, ErrorLog: sshd.Log, AccessLog: sshd.Log,
		uid: os.Getuid(), gid: os.Getgid()}
	srv.URL = e.sourceURL(srv, sshd.Port)
	m, out, err := tryMountSFTP(t, e, srv, sftpMountOptions{Foreground: true, CacheDir: cache, Args: []string{"--verbose=false"}})
	if err != nil {
		if m != nil {
			out += "\n" + tailFile(m.LogFile, 20)
		}
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	return cloudmountBenchMount(m, cache == ""), nil
}

// localSystem is a directory on the local disk, on the file system that
// holds the servers' directories.
func localSystem(fx *benchFixtures) *benchSystem {
	return &benchSystem{
		ID: "local", Label: "local disk", Role: roleLimit, kind: kindLocal, dir: fx.localDir,
		Command: "the same workloads on a directory of the local disk (ext4, the disk that holds the servers' directories)",
	}
}

// curlSystem is curl against a WebDAV server: the protocol's limit.
func curlSystem(id string, srv *Server, srvErr error) *benchSystem {
	kind := strings.TrimPrefix(id, "curl-")
	s := &benchSystem{
		ID: id, Label: "curl", Role: roleLimit, Server: serverLabel(kind), kind: kindCurl, web: srv,
		Command: "curl -K CONFIG: one process, one connection, requests in series (PUT/GET/MKCOL/PROPFIND Depth 1)",
	}
	if srvErr == nil {
		srvErr = lookTools("curl")
	}
	if srvErr != nil {
		s.Unavailable = srvErr.Error()
	} else if srv != nil {
		s.dir = srv.Dir
	}
	return s
}
