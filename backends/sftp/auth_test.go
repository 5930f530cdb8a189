package sftp

import (
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/cloudmount/cloudmount/backends"
)

// writeKey writes priv (encrypted with passphrase unless it is "") as an
// OpenSSH private key file.
func writeKey(t *testing.T, file string, priv any, passphrase string) {
	t.Helper()
	var (
		block *pem.Block
		err   error
	)
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthDefaultKey(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	writeKey(t, filepath.Join(c.home, ".ssh", "id_ed25519"), priv, "")
	cfg := c.config(s)
	cfg.Password = nil
	open(t, cfg)
}

func TestAuthExplicitKeyFirst(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	file := filepath.Join(t.TempDir(), "mykey")
	writeKey(t, file, priv, "")
	cfg := c.config(s)
	cfg.IdentityFiles = []string{file}
	calls := 0
	cfg.Password = func() (string, error) { calls++; return "wrong", nil }
	open(t, cfg)
	if calls != 0 {
		t.Fatalf("password asked %d times though the key worked", calls)
	}
}

func TestAuthEncryptedKey(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	file := filepath.Join(c.home, ".ssh", "id_ed25519")
	writeKey(t, file, priv, "sesame")
	cfg := c.config(s)
	forEncryptedKeys(&cfg)
	cfg.Password = nil

	// without a passphrase source: skipped, and the error says so
	_, err := New(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) || !strings.Contains(err.Error(), "encrypted key "+file) {
		t.Fatalf("New without passphrase: %v", err)
	}

	var asked atomic.Int32
	cfg.Passphrase = func(keyFile string) (string, error) {
		asked.Add(1)
		if keyFile != file {
			t.Errorf("passphrase for %s", keyFile)
		}
		return "sesame", nil
	}
	b := open(t, cfg)
	// a second connection does not ask again
	c2, err := b.connect(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	c2.kill("test")
	if n := asked.Load(); n != 1 {
		t.Fatalf("passphrase asked %d times", n)
	}
}

func TestAuthEncryptedKeyNotAcceptedNotDecrypted(t *testing.T) {
	// The server does not know the key: its passphrase is never asked.
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, _ := newKey(t)
	writeKey(t, filepath.Join(c.home, ".ssh", "id_ed25519"), priv, "sesame")
	cfg := c.config(s)
	forEncryptedKeys(&cfg)
	cfg.Passphrase = func(string) (string, error) {
		t.Error("passphrase asked for a key the server does not accept")
		return "sesame", nil
	}
	open(t, cfg) // by password
}

func TestAuthPassword(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.Connections = 1
	var calls atomic.Int32
	cfg.Password = func() (string, error) { calls.Add(1); return s.password, nil }
	open(t, cfg)
	if n := calls.Load(); n != 1 {
		t.Fatalf("password asked %d times", n)
	}
}

func TestAuthWrongPassword(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	var calls atomic.Int32
	cfg.Password = func() (string, error) { calls.Add(1); return "not the password", nil }
	_, err := New(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) {
		t.Fatalf("New: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"authentication failed", `user "tester"`, "password"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "not the password") {
		t.Fatal("the password is in the error")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("password asked %d times in one connect", n)
	}
}

func TestAuthNothingToOffer(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.Password = nil
	_, err := New(ctxT(t), cfg)
	if !errors.Is(err, backends.ErrAuth) || !strings.Contains(err.Error(), "no key and no password") {
		t.Fatalf("New: %v", err)
	}
}

func TestAuthAgent(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortTempDir(t), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = agent.ServeAgent(keyring, conn)
			}()
		}
	}()
	cfg := c.config(s)
	cfg.Password = nil
	cfg.AgentSocket = sock
	open(t, cfg)
}

// shortTempDir is a temporary directory with a path short enough for a
// unix socket.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestSSHConfig(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	writeKey(t, filepath.Join(c.home, ".ssh", "work_key"), priv, "")
	host, port, _ := net.SplitHostPort(s.addr)
	conf := "Host myserver\n  HostName " + host + "\n  Port " + port + "\n  User alice\n  IdentityFile ~/.ssh/work_key\n"
	if err := os.WriteFile(filepath.Join(c.home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := c.config(s)
	cfg.Host, cfg.Port, cfg.User, cfg.SSHConfigFile, cfg.Password = "myserver", 0, "", "", nil
	b := open(t, cfg)
	if b.target.user != "alice" || b.target.hostName != host || b.hostPort != s.addr {
		t.Fatalf("endpoint %+v", b.target)
	}
	if !strings.HasPrefix(b.String(), "sftp://alice@myserver:"+port+"/") {
		t.Fatalf("String %q", b.String())
	}
}

func TestProxyJump(t *testing.T) {
	// The jump host is another test server; x/crypto's server does not
	// forward, so a forwarding server is set up here.
	target := newTestServer(t)
	jump := newJumpServer(t)
	c := newClient(t)
	c.trust(t, target)
	if err := appendLine(c.knownHosts, knownLine(jump.addr, jump.hostKey.PublicKey())); err != nil {
		t.Fatal(err)
	}
	priv, signer := newKey(t)
	jump.authorized = signer.PublicKey()
	writeKey(t, filepath.Join(c.home, ".ssh", "id_ed25519"), priv, "")
	jh, jp, _ := net.SplitHostPort(jump.addr)
	conf := "Host bastion\n  HostName " + jh + "\n  Port " + jp + "\n  User jumper\n\nHost *\n  ProxyJump bastion\n"
	if err := os.WriteFile(filepath.Join(c.home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := c.config(target)
	cfg.SSHConfigFile = ""
	var passwordCalls atomic.Int32
	cfg.Password = func() (string, error) { passwordCalls.Add(1); return target.password, nil }
	b := open(t, cfg)
	if len(b.hops) != 1 || jump.forwarded.Load() == 0 {
		t.Fatalf("no jump: hops %v, forwarded %d", b.hops, jump.forwarded.Load())
	}
	put(t, b, "x", "through the bastion")
	if got := readAll(t, b, "x", 0, -1); got != "through the bastion" {
		t.Fatalf("read %q", got)
	}
	if passwordCalls.Load() == 0 {
		t.Fatal("password never asked")
	}
}

func TestAuthWrongPassphrase(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	priv, signer := newKey(t)
	s.authorize(signer.PublicKey())
	file := filepath.Join(t.TempDir(), "enc")
	writeKey(t, file, priv, "sesame")
	for _, withPassword := range []bool{false, true} {
		cfg := c.config(s)
		forEncryptedKeys(&cfg)
		cfg.IdentityFiles = []string{file}
		cfg.Passphrase = func(string) (string, error) { return "wrong", nil }
		if withPassword {
			cfg.Password = func() (string, error) { return "wrong", nil }
		} else {
			cfg.Password = nil
		}
		_, err := New(ctxT(t), cfg)
		if !errors.Is(err, backends.ErrAuth) || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), file) {
			t.Fatalf("New with a wrong passphrase (password %v): %v", withPassword, err)
		}
	}
}

// forEncryptedKeys gives cfg a deadline for a login that decrypts an
// OpenSSH key: its bcrypt KDF takes seconds under -race on a busy machine.
func forEncryptedKeys(cfg *Config) { cfg.Timeout = time.Minute }
