//go:build bench

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// davfsConf is the davfs2 configuration of the benchmark: the defaults,
// except where the files are and buf_size. davfs2 1.6 lists no directory on
// Linux 6.16 and later with the default buf_size of 16 KiB (getdents64
// answers EINVAL; alisarctl/davfs2#22): 64 KiB is the known workaround.
const davfsConf = `# davfs2 for the cloudmount benchmark: defaults except these.
secrets %s
cache_dir %s
ask_auth 0
buf_size 64
`

// davfsSystem is davfs2 on Apache, mounted with mount -t davfs.
func davfsSystem(srv *Server, srvErr error) *benchSystem {
	s := &benchSystem{
		ID: "davfs2", Label: "davfs2", Role: rolePeer, Server: serverLabel("apache"), kind: kindMount, web: srv,
		Command: "mount -t davfs URL MNT -o conf=FILE; umount MNT (waits for davfs2's uploads). FILE: " +
			"`secrets FILE`, `cache_dir DIR`, `ask_auth 0`, `buf_size 64` (needed on Linux ≥ 6.16), all else default (use_locks 1, delay_upload 10)",
	}
	if srvErr == nil {
		srvErr = lookTools("mount.davfs", "umount.davfs", "mount", "umount")
	}
	if srvErr == nil && os.Geteuid() != 0 {
		srvErr = errors.New("mount.davfs needs root (or an fstab entry) to mount")
	}
	if srvErr == nil {
		if _, err := user.LookupGroup("davfs2"); err != nil {
			srvErr = fmt.Errorf("group davfs2: %w", err)
		}
	}
	if srvErr != nil {
		s.Unavailable = srvErr.Error()
		return s
	}
	if srv == nil {
		return s
	}
	s.dir = srv.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) { return mountDavfs(t, srv, cache) }
	return s
}

// mountDavfs mounts srv with davfs2. mount.davfs drops root and runs as
// the davfs2 user, so its cache directory is root:davfs2 0775, as davfs2
// wants, and the temp directories above it are traversable.
func mountDavfs(t *testing.T, srv *Server, cache string) (*benchMount, error) {
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	fresh := cache == ""
	if fresh {
		cache = filepath.Join(base, "cache")
		g, err := user.LookupGroup("davfs2")
		if err != nil {
			return nil, err
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Mkdir(cache, 0o775); err != nil {
			return nil, err
		}
		if err := os.Chown(cache, 0, gid); err != nil {
			return nil, err
		}
		if err := os.Chmod(cache, 0o775); err != nil {
			return nil, err
		}
	}
	secrets := filepath.Join(base, "secrets")
	writeSecrets(t, secrets, 0o600, srv.URL, srv.User, srv.Password)
	conf := filepath.Join(base, "davfs2.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(davfsConf, secrets, cache)), 0o644); err != nil {
		return nil, err
	}
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, err
	}
	rememberMountDir(mnt)

	daemon := 0
	findDaemon := func() int {
		if daemon == 0 || !procHasArg(daemon, mnt) {
			daemon = findProc("mount.davfs", mnt)
		}
		return daemon
	}
	unmount := func() error {
		out, err := runCmd("", 15*time.Minute, "umount", mnt)
		if err != nil {
			return fmt.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
		// umount.davfs waits for mount.davfs; make sure of it.
		return waitGone(findDaemon, 2*time.Minute)
	}
	t.Cleanup(func() {
		if _, ok := mountedAt(mnt); ok {
			if out, err := runCmd("", 5*time.Minute, "umount", mnt); err != nil {
				t.Logf("cleanup: umount %s: %v %s; unmounting lazily", mnt, err, out)
				_, _ = runCmd("", time.Minute, "umount", "-l", mnt)
			}
		}
		if pid := findDaemon(); pid != 0 {
			// Ours: its command line names our temporary mountpoint.
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if waitGone(findDaemon, 30*time.Second) != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	out, err := runCmd("", 2*time.Minute, "mount", "-t", "davfs", srv.URL, mnt, "-o", "conf="+conf)
	if err != nil {
		return nil, fmt.Errorf("mount -t davfs: %v\n%s", err, out)
	}
	if _, ok := mountedAt(mnt); !ok {
		return nil, fmt.Errorf("mount -t davfs returned success but %s is not mounted\n%s", mnt, out)
	}
	if findDaemon() == 0 {
		return nil, fmt.Errorf("no mount.davfs process serves %s", mnt)
	}
	return &benchMount{Dir: mnt, CacheDir: cache, freshCache: fresh, daemon: findDaemon, unmount: unmount}, nil
}

// rcloneMountSystem is rclone mount with --vfs-cache-mode mode on Apache,
// through a webdav remote defined in the environment.
func rcloneMountSystem(mode string, srv *Server, srvErr error) *benchSystem {
	s := &benchSystem{
		ID: "rclone-" + mode, Label: "rclone mount " + mode, Role: rolePeer, Server: serverLabel("apache"), kind: kindMount, web: srv,
		Command: "rclone mount bench: MNT --config /dev/null --vfs-cache-mode " + mode + " --cache-dir DIR, with RCLONE_CONFIG_BENCH_TYPE=webdav, " +
			"_URL, _VENDOR=other, _USER, _PASS (obscured); defaults otherwise (--vfs-write-back 5s, --transfers 4); unmount: fusermount3 -u",
		unmountDropsUploads: true,
	}
	if srvErr == nil {
		srvErr = lookTools("rclone", "fusermount3")
	}
	if srvErr != nil {
		s.Unavailable = srvErr.Error()
		return s
	}
	if srv == nil {
		return s
	}
	s.dir = srv.Dir
	var obscured string
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		if obscured == "" {
			cmd := exec.Command("rclone", "obscure", "-")
			cmd.Stdin = strings.NewReader(srv.Password + "\n")
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("rclone obscure: %w", err)
			}
			obscured = strings.TrimSpace(string(out))
		}
		return mountRclone(t, mode, "bench:", cache, func(string) (string, []string, error) {
			return "/dev/null", []string{
				"RCLONE_CONFIG_BENCH_TYPE=webdav",
				"RCLONE_CONFIG_BENCH_URL=" + srv.URL,
				"RCLONE_CONFIG_BENCH_VENDOR=other",
				"RCLONE_CONFIG_BENCH_USER=" + srv.User,
				"RCLONE_CONFIG_BENCH_PASS=" + obscured,
			}, nil
		})
	}
	return s
}

// rcloneSFTPConf is the rclone config of rclone-sftp: an sftp remote with
// the harness's key and a known_hosts file that trusts the sshd; all else
// is rclone's default.
const rcloneSFTPConf = `[bench]
type = sftp
host = 127.0.0.1
port = %d
user = %s
key_file = %s
known_hosts_file = %s
`

// rcloneSFTPSystem is rclone mount with --vfs-cache-mode writes (as
// rclone-writes) on the benchmark's sshd, through an sftp remote in a
// config file of its own.
func rcloneSFTPSystem(sshd *sshServer, sshdErr error) *benchSystem {
	const mode = "writes"
	s := &benchSystem{
		ID: "rclone-sftp", Label: "rclone mount " + mode, Role: rolePeer, Server: serverLabel("sshd"), kind: kindMount, ssh: sshd,
		Command: "rclone mount bench:DIR MNT --config FILE --vfs-cache-mode " + mode + " --cache-dir DIR, FILE: `[bench]` `type = sftp`, " +
			"`host`, `port`, `user`, `key_file`, `known_hosts_file` (a file of its own that trusts the sshd); " +
			"defaults otherwise (--vfs-write-back 5s, --transfers 4; rclone < 1.63 writes the server's file in place); unmount: fusermount3 -u",
		unmountDropsUploads: true,
		serverKeepsMtimes:   true,
	}
	if sshdErr == nil {
		sshdErr = lookTools("rclone", "fusermount3")
	}
	if sshdErr != nil {
		s.Unavailable = sshdErr.Error()
		return s
	}
	if sshd == nil {
		return s
	}
	s.dir = sshd.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		return mountRclone(t, mode, "bench:"+sshd.Dir, cache, func(base string) (string, []string, error) {
			conf := filepath.Join(base, "rclone.conf")
			kh := filepath.Join(base, "known_hosts")
			if err := writeKnownHosts(kh, sshd.HostKey, sshd.Port); err != nil {
				return "", nil, err
			}
			text := fmt.Sprintf(rcloneSFTPConf, sshd.Port, sshd.User, sshd.ClientKey, kh)
			return conf, nil, os.WriteFile(conf, []byte(text), 0o600)
		})
	}
	return s
}

// mountRclone runs rclone mount REMOTE MNT with --vfs-cache-mode mode and
// the cache directory cache (a fresh one when ""), in the foreground, with
// nothing of the machine's rclone or ssh setup: HOME is a fresh directory,
// and config returns the --config file and the environment (RCLONE_CONFIG_*)
// that define the remote, given that directory.
func mountRclone(t *testing.T, mode, remote, cache string, config func(base string) (string, []string, error)) (*benchMount, error) {
	base := t.TempDir()
	fresh := cache == ""
	if fresh {
		cache = filepath.Join(base, "cache")
	}
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, err
	}
	conf, env, err := config(base)
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(base, "rclone.log")
	cmd := exec.Command("rclone", "mount", remote, mnt, "--config", conf,
		"--vfs-cache-mode", mode, "--cache-dir", cache, "--log-file", logFile)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LANG=C"}, env...)
	m, err := mountForeground(t, "rclone mount", cmd, mnt, logFile)
	if err != nil {
		return nil, err
	}
	m.CacheDir, m.freshCache = cache, fresh
	return m, nil
}

// sshfsSystem is sshfs with default options on the benchmark's sshd.
func sshfsSystem(sshd *sshServer, sshdErr error) *benchSystem {
	s := &benchSystem{
		ID: "sshfs", Label: "sshfs", Role: rolePeer, Server: "OpenSSH sshd", kind: kindMount, ssh: sshd,
		Command: "sshfs bench:DIR MNT -f -F SSH_CONFIG (default options); unmount: fusermount3 -u",
	}
	if sshdErr == nil {
		sshdErr = lookTools("sshfs", "fusermount3")
	}
	if sshdErr != nil {
		s.Unavailable = sshdErr.Error()
		return s
	}
	if sshd == nil {
		return s
	}
	s.dir = sshd.Dir
	s.mount = func(t *testing.T, cache string) (*benchMount, error) {
		base := t.TempDir()
		mnt := filepath.Join(base, "mnt")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			return nil, err
		}
		logFile := filepath.Join(base, "sshfs.log")
		cmd := exec.Command("sshfs", sshd.Host+":"+sshd.Dir, mnt, "-f", "-F", sshd.ClientConfig)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base, "LANG=C"}
		return mountForeground(t, "sshfs", cmd, mnt, logFile)
	}
	return s
}

// sftpSystem is sftp, scp and rsync over ssh: the SFTP limit.
func sftpSystem(sshd *sshServer, sshdErr error) *benchSystem {
	s := &benchSystem{
		ID: "sftp", Label: "sftp/scp", Role: roleLimit, Server: "OpenSSH sshd", kind: kindSFTP, ssh: sshd,
		Command: "scp -F SSH_CONFIG (one file), sftp -F SSH_CONFIG -b BATCH (many files, listings; in series), rsync -a -e 'ssh -F SSH_CONFIG'; " +
			"all through one ssh master connection (ControlMaster), so that the ~0.4 s handshake, which a mount pays once at mount time, is left out",
	}
	if sshdErr == nil {
		sshdErr = lookTools("sftp", "scp", "rsync")
	}
	if sshdErr != nil {
		s.Unavailable = sshdErr.Error()
	} else if sshd != nil {
		s.dir = sshd.Dir
	}
	return s
}

// mountForeground starts a FUSE daemon that stays in the foreground
// (rclone mount, sshfs -f) and waits until its mount appears.
func mountForeground(t *testing.T, name string, cmd *exec.Cmd, mnt, logFile string) (*benchMount, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	rememberMountDir(mnt)
	p, err := startProc(name, cmd)
	out.Close()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if _, ok := mountedAt(mnt); ok {
			if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
				t.Logf("cleanup: fusermount3 -u %s: %v %s; unmounting lazily", mnt, err, out)
				_ = exec.Command("fusermount3", "-uz", mnt).Run()
			}
		}
		_ = p.stop(10 * time.Second)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, ok := mountedAt(mnt); ok {
			break
		}
		if p.exited() {
			return nil, fmt.Errorf("%s exited before mounting: %v\n%s", name, p.waitErr, tailFile(logFile, 20))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not mount within 60s\n%s", name, tailFile(logFile, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := &benchMount{Dir: mnt}
	m.daemon = func() int {
		if p.exited() {
			return 0
		}
		return p.pid()
	}
	m.unmount = func() error {
		if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("fusermount3 -u %s: %v %s", mnt, err, out)
		}
		if !p.wait(2 * time.Minute) {
			_ = p.stop(10 * time.Second)
			return fmt.Errorf("%s still ran 2 minutes after unmount", name)
		}
		return nil
	}
	return m, nil
}

// findProc returns the PID of a process named comm whose command line has
// the argument arg (a temporary path of ours), or 0.
func findProc(comm, arg string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if procHasArg(pid, arg) {
			return pid
		}
	}
	return 0
}

// procHasArg reports whether pid runs with the argument arg.
func procHasArg(pid int, arg string) bool {
	return slices.Contains(procCmdline(pid), arg)
}

// waitGone waits until find returns 0.
func waitGone(find func() int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		pid := find()
		if pid == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still runs after %v", pid, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
