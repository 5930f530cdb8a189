package sftp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cloudmount/cloudmount/backends"
)

func TestUnknownHostKey(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	_, err := New(ctxT(t), c.config(s))
	if !errors.Is(err, backends.ErrAuth) {
		t.Fatalf("New: %v", err)
	}
	fp := ssh.FingerprintSHA256(s.hostKey.PublicKey())
	for _, want := range []string{fp, "ssh-ed25519", "not known", "accept_new_host_key", "ssh-keyscan -p"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(c.knownHosts); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("known_hosts written: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(c.knownHosts)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf(".ssh created: %v", err)
	}
}

func TestAcceptNewHostKey(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	cfg := c.config(s)
	cfg.AcceptNewHostKey = true
	b := open(t, cfg)
	b.Close()
	data, err := os.ReadFile(c.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	want := knownhosts.Line([]string{s.addr}, s.hostKey.PublicKey()) + "\n"
	if string(data) != want {
		t.Fatalf("known_hosts %q, want %q", data, want)
	}
	for p, mode := range map[string]os.FileMode{c.knownHosts: 0o600, filepath.Dir(c.knownHosts): 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	// again with accept-new: nothing added
	open(t, cfg)
	// and without: known now
	cfg.AcceptNewHostKey = false
	open(t, cfg)
	data2, _ := os.ReadFile(c.knownHosts)
	if string(data2) != want {
		t.Fatalf("known_hosts grew: %q", data2)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	_, other := newKey(t)
	if err := appendLine(c.knownHosts, "# comment\n"+knownhosts.Line([]string{s.addr}, other.PublicKey())+"\n"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(c.knownHosts)
	cfg := c.config(s)
	cfg.AcceptNewHostKey = true
	_, err := New(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) {
		t.Fatalf("New: %v", err)
	}
	for _, want := range []string{"CHANGED", "intercepting", "line 2 of " + c.knownHosts, ssh.FingerprintSHA256(s.hostKey.PublicKey())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	after, _ := os.ReadFile(c.knownHosts)
	if string(after) != string(before) {
		t.Fatal("known_hosts changed")
	}
}

func TestChangedHostKeyType(t *testing.T) {
	// known_hosts has an ECDSA key; the server offers only ed25519.
	s := newTestServer(t)
	c := newClient(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendLine(c.knownHosts, knownhosts.Line([]string{s.addr}, pub)+"\n"); err != nil {
		t.Fatal(err)
	}
	cfg := c.config(s)
	cfg.AcceptNewHostKey = true
	_, err = New(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) || !strings.Contains(err.Error(), "CHANGED") {
		t.Fatalf("New: %v", err)
	}
}

func TestHashedKnownHosts(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	line := knownhosts.HashHostname(knownhosts.Normalize(s.addr)) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey())))
	if err := appendLine(c.knownHosts, line+"\n"); err != nil {
		t.Fatal(err)
	}
	open(t, c.config(s))
}

func TestKnownHostsPreferredAlgorithm(t *testing.T) {
	// The server has an ed25519 and an ECDSA key; known_hosts holds only
	// one of them. The client must ask for that type rather than take the
	// other for a changed key.
	s := newTestServer(t, withECDSAHostKey)
	for _, key := range []ssh.PublicKey{s.hostKey.PublicKey(), s.ecdsaKey.PublicKey()} {
		c := newClient(t)
		if err := appendLine(c.knownHosts, knownhosts.Line([]string{s.addr}, key)+"\n"); err != nil {
			t.Fatal(err)
		}
		open(t, c.config(s))
	}
}
