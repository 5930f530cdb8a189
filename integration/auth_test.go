package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuthFailureRetried: the server refuses the credentials for a while
// after the mount (Apache re-reads its password file on every request).
// Uploads queued meanwhile are kept, status says "authentication failed"
// and what to do, not "online", and once the server accepts the
// credentials again everything lands without a remount.
func TestAuthFailureRetried(t *testing.T) {
	srv := startApache(t)
	htpasswd := filepath.Join(filepath.Dir(srv.Dir), "htpasswd")
	good, err := os.ReadFile(htpasswd)
	if err != nil {
		t.Fatal(err)
	}
	m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay", "2s"}})
	run(t, m.Dir, "mkdir", "docs")
	m.Sync(t)
	bash(t, m.Dir, "printf 'one\\n' > docs/one.txt && printf 'two\\n' > two.txt")
	// Within the write-back delay: the uploads meet the refusal.
	replaceFile(t, htpasswd, otherPassword(t, srv.User))

	eventually(t, 30*time.Second, func() error {
		st, err := m.tryStatus()
		switch {
		case err != nil:
			return err
		case st.Online || !st.AuthFailed || !strings.Contains(st.LastError, "authentication failed"):
			return errorf("status %s, want offline with auth_failed and the server's refusal", st)
		}
		return nil
	})
	st := m.Status(t)
	if st.QueuedFiles != 2 {
		t.Errorf("status %s: want both files queued", st)
	}
	for _, f := range st.Failed {
		if f.Permanent {
			t.Errorf("status %s: %s failed permanently, want retried", st, f.Path)
		}
	}
	out, code, err := m.ctl(30*time.Second, "status", m.Dir)
	if err != nil || code != 0 || !strings.Contains(out, "authentication failed since") ||
		!strings.Contains(out, "check them (the secrets file") || strings.Contains(out, "  online") {
		t.Errorf("status: exit %d, %v\n%s", code, err, out)
	}
	if _, err := os.Stat(srv.Path("two.txt")); err == nil {
		t.Fatal("two.txt reached the server with refused credentials")
	}

	replaceFile(t, htpasswd, good)
	m.Sync(t)
	wantServerFile(t, srv, "docs/one.txt", []byte("one\n"))
	wantServerFile(t, srv, "two.txt", []byte("two\n"))
	if st := m.Status(t); !st.Online || st.AuthFailed || st.QueuedFiles != 0 || len(st.Failed) != 0 {
		t.Errorf("status after the server accepts the credentials again: %s", st)
	}
	if log, err := os.ReadFile(m.LogFile); err != nil || strings.Contains(string(log), "will not be retried") ||
		!strings.Contains(string(log), "the server accepts the credentials again") {
		t.Errorf("daemon log (%v):\n%s", err, log)
	}
}

// otherPassword is an htpasswd file in which user has another password.
func otherPassword(t *testing.T, user string) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "htpasswd")
	cmd := exec.Command(needTool(t, "htpasswd"), "-ciB", file, user)
	cmd.Stdin = strings.NewReader("not-the-password-" + randomHex(t, 4) + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceFile replaces name's content in one step (a reader sees the old or
// the new file, never a part), keeping its mode.
func replaceFile(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := name + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}
