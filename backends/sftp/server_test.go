package sftp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is an SSH server in the test process serving a temporary
// directory over SFTP (pkg/sftp's server), with password and public key
// logins and, if exec is set, a tiny sha256sum for exec channels.
type testServer struct {
	t        *testing.T
	addr     string // 127.0.0.1:port
	dir      string // the directory served
	hostKey  ssh.Signer
	password string
	// workDir makes relative paths (and the login directory) dir; else
	// they are the test process's working directory.
	workDir bool
	exec    bool
	// ecdsaKey, if set, is a second host key (ECDSA).
	ecdsaKey ssh.Signer

	mu         sync.Mutex
	authorized []ssh.PublicKey
	logins     int // successful logins
	failures   int // refused login attempts (password)

	ln    net.Listener
	conns sync.WaitGroup
}

type serverOption func(*testServer)

func withExec(s *testServer)    { s.exec = true }
func withWorkDir(s *testServer) { s.workDir = true }

func withECDSAHostKey(s *testServer) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.ecdsaKey, err = ssh.NewSignerFromKey(priv); err != nil {
		s.t.Fatal(err)
	}
}

func newTestServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	s := &testServer{t: t, dir: t.TempDir(), password: "correct horse"}
	for _, o := range opts {
		o(s)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.hostKey, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if string(pw) == s.password {
				s.logins++
				return nil, nil
			}
			s.failures++
			return nil, errors.New("wrong password")
		},
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range s.authorized {
				if string(k.Marshal()) == string(key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(s.hostKey)
	if s.ecdsaKey != nil {
		cfg.AddHostKey(s.ecdsaKey)
	}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				s.serve(nc, cfg)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

// authorize lets key log in.
func (s *testServer) authorize(key ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized = append(s.authorized, key)
}

func (s *testServer) serve(nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			if len(req.Payload) < 4 || string(req.Payload[4:]) != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			var opts []sftp.ServerOption
			if s.workDir {
				opts = append(opts, sftp.WithServerWorkingDirectory(s.dir))
			}
			srv, err := sftp.NewServer(ch, opts...)
			if err != nil {
				return
			}
			go ssh.DiscardRequests(reqs)
			_ = srv.Serve()
			return
		case "exec":
			if !s.exec || len(req.Payload) < 4 {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			status := s.run(string(req.Payload[4:]), ch)
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], status)
			_, _ = ch.SendRequest("exit-status", false, b[:])
			return
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// run is the test server's shell: it knows "sha256sum" and
// "sha256sum < 'file'".
func (s *testServer) run(cmd string, ch ssh.Channel) uint32 {
	var in io.Reader
	switch {
	case cmd == "sha256sum":
		in = ch
	case strings.HasPrefix(cmd, "sha256sum < '") && strings.HasSuffix(cmd, "'"):
		name := strings.ReplaceAll(cmd[len("sha256sum < '"):len(cmd)-1], `'\''`, "'")
		f, err := os.Open(name)
		if err != nil {
			_, _ = io.WriteString(ch.Stderr(), "sh: "+name+": No such file or directory\n")
			return 1
		}
		defer f.Close()
		in = f
	default:
		_, _ = io.WriteString(ch.Stderr(), "sh: command not found\n")
		return 127
	}
	h := sha256.New()
	if _, err := io.Copy(h, in); err != nil {
		return 1
	}
	_, _ = io.WriteString(ch, hex.EncodeToString(h.Sum(nil))+"  -\n")
	return 0
}

// client is the files of a user who mounts: a home with .ssh.
type client struct {
	home       string
	knownHosts string
}

func newClient(t *testing.T) *client {
	t.Helper()
	home := t.TempDir()
	return &client{home: home, knownHosts: filepath.Join(home, ".ssh", "known_hosts")}
}

// trust writes the server's key into the client's known_hosts.
func (c *client) trust(t *testing.T, s *testServer) {
	t.Helper()
	line := knownhosts.Line([]string{s.addr}, s.hostKey.PublicKey())
	if err := appendLine(c.knownHosts, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// config is a Config for s with the password login and no ssh config.
func (c *client) config(s *testServer) Config {
	host, port, _ := net.SplitHostPort(s.addr)
	var p int
	for _, r := range port {
		p = p*10 + int(r-'0')
	}
	pw := s.password
	return Config{
		Host:          host,
		Port:          p,
		User:          "tester",
		Path:          s.dir,
		Password:      func() (string, error) { return pw, nil },
		HomeDir:       c.home,
		SSHConfigFile: "none",
		Timeout:       5 * time.Second,
		Logger:        testLogger(),
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// open connects with cfg and closes the backend at the end of the test.
func open(t *testing.T, cfg Config) *Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// newBackend is a server and a backend with a trusted host key and a
// password login.
func newBackend(t *testing.T, opts ...serverOption) (*Backend, *testServer) {
	t.Helper()
	s := newTestServer(t, opts...)
	c := newClient(t)
	c.trust(t, s)
	return open(t, c.config(s)), s
}

// newKey makes an ed25519 key pair.
func newKey(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, signer
}

// stallDialer hands out connections that stop delivering bytes while
// stalled (what arrives is held back, not lost).
type stallDialer struct {
	stalled atomic.Bool
	dials   atomic.Int32
}

func (d *stallDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: nc, d: d}, nil
}

type stallConn struct {
	net.Conn
	d      *stallDialer
	closed atomic.Bool
}

func (c *stallConn) hold() {
	for c.d.stalled.Load() && !c.closed.Load() {
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.hold()
	n, err := c.Conn.Read(p)
	c.hold()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *stallConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}
