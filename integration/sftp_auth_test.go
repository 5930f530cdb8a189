package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testSFTPHostKeys checks the host key as ssh does: an unknown key is
// refused with its SHA256 fingerprint (the one ssh-keygen -lf prints) and
// nothing is mounted; --accept-new-host-key (or -o accept_new_host_key)
// trusts it and writes it to known_hosts; a different key on record is
// refused loudly, also with --accept-new-host-key; a hashed entry works.
func testSFTPHostKeys(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	fp := fingerprint(t, e.SSHD.HostKeyFile)
	host := fmt.Sprintf("[127.0.0.1]:%d", e.SSHD.Port)

	t.Run("unknown", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		out := wantMountFails(t, e, srv, sftpMountOptions{KnownHosts: kh})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !strings.Contains(out, fp) {
			t.Errorf("the refusal does not name the server's key %s (ssh-keygen -lf):\n%s", fp, out)
		}
		if b, _ := os.ReadFile(kh); len(b) != 0 {
			t.Errorf("known_hosts was changed without --accept-new-host-key:\n%s", b)
		}
	})

	for _, form := range [][]string{{"--accept-new-host-key"}, {"-o", "accept_new_host_key"}} {
		t.Run("accept new "+form[len(form)-1], func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "ssh", "known_hosts") // neither exists yet
			o := sftpMountOptions{KnownHosts: kh, Args: form}
			m := mountSFTP(t, e, srv, o)
			if _, err := os.ReadDir(m.Dir); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("ssh-keygen", "-F", host, "-f", kh).CombinedOutput()
			if err != nil || !strings.Contains(string(out), strings.Fields(e.SSHD.HostKey)[1]) {
				b, _ := os.ReadFile(kh)
				t.Fatalf("after --accept-new-host-key, ssh-keygen -F %s finds no key of the server (%v):\n%s\nknown_hosts:\n%s", host, err, out, b)
			}
			if fi, err := os.Stat(kh); err == nil && fi.Mode().Perm()&0o022 != 0 {
				t.Errorf("known_hosts written with mode %v, writable by others", fi.Mode().Perm())
			}
			// Trusted from now on, without the option.
			o.Args = nil
			remountSFTP(t, e, m, o)
		})
	}

	t.Run("changed", func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other_ed25519")
		if err := sshKeygen(other, ""); err != nil {
			t.Fatal(err)
		}
		otherKey, err := publicKeyLine(other + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		kh := filepath.Join(dir, "known_hosts")
		if err := writeKnownHosts(kh, otherKey, e.SSHD.Port); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(kh)
		out := wantMountFails(t, e, srv, sftpMountOptions{KnownHosts: kh, Args: []string{"--accept-new-host-key"}})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !regexp.MustCompile(`(?i)chang|mismatch|does not match|differ`).MatchString(out) {
			t.Errorf("the refusal of a changed host key does not say that it changed:\n%s", out)
		}
		if !strings.Contains(out, fp) {
			t.Errorf("the refusal does not name the key the server offers, %s:\n%s", fp, out)
		}
		if after, _ := os.ReadFile(kh); string(after) != string(before) {
			t.Errorf("known_hosts changed after a refused key:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("hashed", func(t *testing.T) {
		kh := e.knownHosts(t, e.SSHD.Port)
		run(t, "", "ssh-keygen", "-H", "-f", kh)
		os.Remove(kh + ".old")
		if b, _ := os.ReadFile(kh); strings.Contains(string(b), "127.0.0.1") || !strings.HasPrefix(string(b), "|1|") {
			t.Fatalf("ssh-keygen -H did not hash the host name:\n%s", b)
		}
		m := mountSFTP(t, e, srv, sftpMountOptions{KnownHosts: kh})
		if _, err := os.ReadDir(m.Dir); err != nil {
			t.Fatal(err)
		}
	})
}

// testSFTPAuth logs in every way a user can: a key given with --identity,
// a key in ssh-agent, the password from the secrets file or from
// CLOUDMOUNT_PASSWORD, an encrypted key whose passphrase is the source's
// secret (keyed by URL or by mountpoint) or is typed at the terminal.
// sshd's log must show the method. A wrong password, a wrong passphrase
// or no credentials at all fail with a message that says what is wrong,
// and nothing is mounted.
func testSFTPAuth(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	// works mounts with o, writes a file through the mount and checks that
	// it reaches the server, and that sshd logged a login with method.
	works := func(t *testing.T, o sftpMountOptions, method string) {
		t.Helper()
		before := e.acceptedLogins(t, method)
		m := mountSFTP(t, e, srv, o)
		name := "via-" + regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:]), "-") + ".txt"
		data := []byte("written after logging in as " + t.Name() + "\n")
		if err := os.WriteFile(m.Path(name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path(name), data)
		if e.acceptedLogins(t, method) == before {
			t.Errorf("sshd logged no %s login of %s for the mount:\n%s", method, e.User.Name, tailFile(e.SSHD.Log, 10))
		}
	}

	t.Run("identity", func(t *testing.T) {
		works(t, sftpMountOptions{}, "publickey")
	})

	t.Run("agent", func(t *testing.T) {
		agent := needTool(t, "ssh-agent")
		sock := filepath.Join(t.TempDir(), "agent.sock")
		cmd := exec.Command(agent, "-D", "-a", sock)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		p, err := startProc("ssh-agent", cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.stop(5 * time.Second) })
		eventually(t, 10*time.Second, func() error {
			_, err := os.Stat(sock)
			return err
		})
		add := exec.Command("ssh-add", e.SSHD.ClientKey)
		add.Env = []string{"PATH=" + os.Getenv("PATH"), "SSH_AUTH_SOCK=" + sock}
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v\n%s", err, out)
		}
		works(t, sftpMountOptions{NoIdentity: true, Env: []string{"SSH_AUTH_SOCK=" + sock}}, "publickey")
	})

	t.Run("password from the secrets file", func(t *testing.T) {
		works(t, sftpMountOptions{NoIdentity: true, Secret: e.Password}, "password")
	})

	t.Run("password from CLOUDMOUNT_PASSWORD", func(t *testing.T) {
		works(t, sftpMountOptions{NoIdentity: true, Env: []string{"CLOUDMOUNT_PASSWORD=" + e.Password}}, "password")
	})

	// An encrypted key: its passphrase is the secret (not the user's password).
	encKey := filepath.Join(t.TempDir(), "id_encrypted")
	passphrase := "passphrase-" + randomHex(t, 8)
	if err := sshKeygen(encKey, passphrase); err != nil {
		t.Fatal(err)
	}
	authorize(t, e, encKey+".pub")

	t.Run("encrypted key", func(t *testing.T) {
		works(t, sftpMountOptions{Identities: []string{encKey}, Secret: passphrase}, "publickey")
	})

	t.Run("encrypted key, passphrase by mountpoint", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		works(t, sftpMountOptions{Identities: []string{encKey}, Secret: passphrase, SecretURL: dir, Dir: dir}, "publickey")
	})

	// No secret: the mount command asks on its terminal, and asks again
	// after a wrong answer, as ssh does. The daemon (which has no
	// terminal) logs in with what was typed: never in its argv,
	// environment or log.
	t.Run("encrypted key, passphrase typed", func(t *testing.T) {
		o := sftpMountOptions{Identities: []string{encKey}, Terminal: []string{"not-" + passphrase, passphrase}}
		m, out, err := tryMountSFTP(t, e, srv, o)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("terminal:\n%s", out)
		if n := strings.Count(out, "Enter passphrase for key "+encKey); n != 2 {
			t.Errorf("the terminal shows %d prompts naming %s, want 2 (a wrong answer, then the right one):\n%s", n, encKey, out)
		}
		if !strings.Contains(out, "does not decrypt "+encKey) {
			t.Errorf("a wrong passphrase was not called wrong:\n%s", out)
		}
		if strings.Contains(out, passphrase) {
			t.Errorf("the terminal echoed the passphrase:\n%s", out)
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", m.pid, f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), passphrase) {
				t.Errorf("the daemon's %s holds the passphrase", f)
			}
		}
		data := []byte("written with a typed passphrase\n")
		if err := os.WriteFile(m.Path("typed.txt"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path("typed.txt"), data)
		if b, _ := os.ReadFile(m.LogFile); strings.Contains(string(b), passphrase) {
			t.Errorf("the daemon's log holds the passphrase")
		}
	})

	authFailure := regexp.MustCompile(`(?i)authenticat|password|permission denied|login`)
	t.Run("wrong password", func(t *testing.T) {
		out := wantMountFails(t, e, srv, sftpMountOptions{NoIdentity: true, Secret: "not-" + e.Password})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !authFailure.MatchString(out) || !strings.Contains(strings.ToLower(out), "password") {
			t.Errorf("a wrong password fails without saying that the password was refused:\n%s", out)
		}
		if strings.Contains(out, e.Password) {
			t.Errorf("the message quotes the password:\n%s", out)
		}
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		out := wantMountFails(t, e, srv, sftpMountOptions{Identities: []string{encKey}, Secret: "not-" + passphrase})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !strings.Contains(strings.ToLower(out), "passphrase") || !strings.Contains(out, encKey) {
			t.Errorf("a wrong passphrase fails without naming the key and the passphrase:\n%s", out)
		}
	})

	t.Run("wrong passphrase typed", func(t *testing.T) {
		wrong := []string{"guess-1-" + passphrase, "guess-2-" + passphrase, "guess-3-" + passphrase}
		out := wantMountFails(t, e, srv, sftpMountOptions{Identities: []string{encKey}, Terminal: wrong})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if n := strings.Count(out, "Enter passphrase for key "+encKey); n != 3 {
			t.Errorf("asked %d times, want 3:\n%s", n, out)
		}
		if !strings.Contains(out, "passphrase of the key "+encKey+" is wrong") {
			t.Errorf("three wrong passphrases fail without naming the key:\n%s", out)
		}
		if strings.Contains(out, passphrase) {
			t.Errorf("the output holds a passphrase:\n%s", out)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		out := wantMountFails(t, e, srv, sftpMountOptions{NoIdentity: true})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !authFailure.MatchString(out) {
			t.Errorf("a login with nothing to offer fails without saying so:\n%s", out)
		}
	})
}

// authorize appends a public key to sshd's authorized_keys.
func authorize(t testing.TB, e *sftpEnv, pubFile string) {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(e.SSHD.Base, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(pub); err != nil {
		t.Fatal(err)
	}
}
