package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSFTP mounts directories of a real OpenSSH sshd (started once for
// all of its subtests, as a local user with a key and a password) and
// checks what a user of an sftp:// mount would: shell use, both source
// forms, host keys, every way to log in, conflicts, rsync, a dead link
// and a crashing server, and go-fuse's POSIX suite. Run one part with
// -run 'TestSFTP/Shell'. SFTP_SOAK=N runs the long variants N times as
// long.
func TestSFTP(t *testing.T) {
	start := time.Now()
	e := newSFTPEnv(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *sftpEnv)
	}{
		{"Shell", testSFTPShell},
		{"Forms", testSFTPForms},
		{"Hashes", testSFTPHashes},
		{"HostKeys", testSFTPHostKeys},
		{"Auth", testSFTPAuth},
		{"Jump", testSFTPJump},
		{"Conflict", testSFTPConflict},
		{"Rsync", testSFTPRsync},
		{"POSIX", testSFTPPOSIX},
		{"Fstab", testSFTPFstab},
		{"Leftovers", testSFTPLeftovers},
		// Last: it kills and restarts the shared sshd.
		{"DeadLink", testSFTPDeadLink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			tc.fn(t, e)
			t.Logf("FIGURE: TestSFTP/%s took %.1fs", tc.name, time.Since(begin).Seconds())
		})
	}
	t.Logf("FIGURE: TestSFTP took %.1fs in all", time.Since(start).Seconds())
}

// sftpSoak is the factor of the long variants (SFTP_SOAK=N), 1 by default.
func sftpSoak() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("SFTP_SOAK"), &n); err != nil || n < 1 {
		return 1
	}
	return n
}

// testSFTPShell runs everyday shell commands in a local directory and on
// the mount and compares the two (output, ls -l, every name, type, mode,
// size, content and symlink target, the mtimes that touch set, to the
// nanosecond); after `cloudmount sync` the server's directory must hold
// the same bytes, modes, symlinks and mtimes (to the second); a remount
// shows the same again.
func testSFTPShell(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	m := mountSFTP(t, e, srv, sftpMountOptions{})
	data := make([]byte, 700<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	local := runShellScript(t, m, data)

	m.Sync(t)
	if err := diffTrees(local, srv.Dir, treeCompare{mtimes: shellTouched, seconds: true, skip: sftpHidden}); err != nil {
		t.Errorf("server vs local directory after cloudmount sync: %v", err)
	}
	// The server keeps whole seconds; the mount still shows what touch set.
	for rel, want := range shellTouched {
		if got := mtimeOf(t, m.Path(rel)); !got.Equal(want) {
			t.Errorf("mount: mtime of %s is %v after sync, want %v as touch set it", rel, got, want)
		}
	}

	m = remountSFTP(t, e, m, sftpMountOptions{})
	if err := diffTrees(local, m.Dir, treeCompare{mtimes: shellTouched}); err != nil {
		t.Errorf("mount vs local directory after unmount and mount: %v", err)
	}
	// A fresh cache directory: what the server keeps, mtimes to the second.
	m.Unmount(t, "cloudmount")
	m = mountSFTP(t, e, srv, sftpMountOptions{Dir: m.Dir})
	if err := diffTrees(local, m.Dir, treeCompare{mtimes: shellTouched, seconds: true}); err != nil {
		t.Errorf("mount with a fresh cache directory vs local directory: %v", err)
	}
}

// testSFTPForms mounts the same directory as sftp://USER@127.0.0.1:PORT/DIR
// and in the sshfs form USER@127.0.0.1:REL (relative to the login
// directory; the port, key and known_hosts from the defaults under
// ~/.ssh), and checks that each sees what the other writes. A third mount
// in the sshfs form logs in with the password from the secrets file,
// under the canonical URL of the source as given, sftp://127.0.0.1/~/REL/.
func testSFTPForms(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	srv.WriteFile(t, "hello.txt", []byte("put on the server\n"), time.Time{})
	fast := []string{"--dir-cache-time", "1s"}
	a := mountSFTP(t, e, srv, sftpMountOptions{Args: fast})

	// A home with the defaults: ~/.ssh/config names the port, the key is
	// ~/.ssh/id_ed25519, the host key is in ~/.ssh/known_hosts.
	home := filepath.Join(t.TempDir(), "home")
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(e.SSHD.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"config":      fmt.Sprintf("Host 127.0.0.1\n  Port %d\n", e.SSHD.Port),
		"id_ed25519":  string(key),
		"known_hosts": fmt.Sprintf("[127.0.0.1]:%d %s\n", e.SSHD.Port, e.SSHD.HostKey),
	} {
		if err := os.WriteFile(filepath.Join(sshDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sshfsForm := e.User.Name + "@127.0.0.1:" + e.rel(srv)
	b := mountSFTP(t, e, srv, sftpMountOptions{Source: sshfsForm, Home: home, NoIdentity: true, KnownHosts: "-", SSHConfig: "-", Args: fast})

	for _, m := range []*Mount{a, b} {
		wantFile(t, m.Path("hello.txt"), []byte("put on the server\n"))
	}
	if err := os.WriteFile(a.Path("from-url.txt"), []byte("written through the sftp:// mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.Path("from-sshfs-form.txt"), []byte("written through the user@host:path mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.Sync(t)
	b.Sync(t)
	for _, m := range []*Mount{a, b} {
		m := m
		eventually(t, 30*time.Second, func() error {
			for name, want := range map[string]string{
				"from-url.txt":        "written through the sftp:// mount\n",
				"from-sshfs-form.txt": "written through the user@host:path mount\n",
			} {
				got, err := os.ReadFile(m.Path(name))
				if err != nil || string(got) != want {
					return fmt.Errorf("%s: %s has %q (%v), want %q", m.Dir, name, got, err, want)
				}
			}
			return nil
		})
	}
	wantServerFile(t, srv, "from-sshfs-form.txt", []byte("written through the user@host:path mount\n"))

	t.Run("sshfs form with a password", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "home")
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{
			"config":      fmt.Sprintf("Host 127.0.0.1\n  Port %d\n", e.SSHD.Port),
			"known_hosts": fmt.Sprintf("[127.0.0.1]:%d %s\n", e.SSHD.Port, e.SSHD.HostKey),
		} {
			if err := os.WriteFile(filepath.Join(home, ".ssh", name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// The secrets line names the source as it was given (the port
		// comes from the ssh config, not from the source).
		url := fmt.Sprintf("sftp://127.0.0.1/~/%s/", e.rel(srv))
		before := e.acceptedLogins(t, "password")
		c := mountSFTP(t, e, srv, sftpMountOptions{Source: sshfsForm, Home: home, NoIdentity: true, KnownHosts: "-", SSHConfig: "-",
			Secret: e.Password, SecretURL: url})
		wantFile(t, c.Path("from-url.txt"), []byte("written through the sftp:// mount\n"))
		if e.acceptedLogins(t, "password") == before {
			t.Errorf("sshd logged no password login of %s for the mount", e.User.Name)
		}
	})
}

// testSFTPHashes reads user.cloudmount.sha256 of a file put on the server
// behind the mount's back, through the SFTP-only port (the hash is
// computed from the content) and through the port with a login shell
// (sha256sum runs on the server). Both must be right; the daemon's
// capabilities must say which one computes on the server.
func testSFTPHashes(t *testing.T, e *sftpEnv) {
	needTool(t, "getfattr")
	srv := e.server(t)
	data := []byte(strings.Repeat("hash me on the server\n", 50000))
	srv.WriteFile(t, "behind.txt", data, time.Time{})
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name     string
		port     int
		onServer bool
	}{{"sftp only", e.SSHD.Port, false}, {"login shell", e.SSHD.ShellPort, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := mountSFTP(t, e, srv, sftpMountOptions{Port: tc.port})
			out := run(t, "", "getfattr", "--absolute-names", "--only-values", "-n", "user.cloudmount.sha256", m.Path("behind.txt"))
			if got := strings.TrimSpace(out); got != want {
				t.Errorf("getfattr user.cloudmount.sha256: %q, want %q (sha256sum)", got, want)
			}
			note := "hashes on the server: no"
			if tc.onServer {
				note = "hashes on the server: yes"
			}
			if log, _ := os.ReadFile(m.LogFile); !strings.Contains(string(log), note) {
				t.Errorf("the daemon log does not say %q:\n%s", note, capabilityLines(m))
			}
			// Hashed on the server, the content never crossed the link;
			// else it was read (through the block cache).
			st := m.Status(t)
			if fetched := st.Cache.FetchedBytes; (fetched == 0) != tc.onServer {
				t.Errorf("%d bytes of the file were read to hash it (hashed on the server: %v)", fetched, tc.onServer)
			}
		})
	}
}

// capabilityLines are the lines of the daemon log about the server's
// capabilities.
func capabilityLines(m *Mount) string {
	log, err := os.ReadFile(m.LogFile)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "capabilities") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
