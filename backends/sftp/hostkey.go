package sftp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cloudmount/cloudmount/backends"
)

// globalKnownHosts is read (never written) when the user names no
// known_hosts file, as OpenSSH does.
const globalKnownHosts = "/etc/ssh/ssh_known_hosts"

// hostKeys checks the keys of servers against known_hosts files, the way
// OpenSSH does with StrictHostKeyChecking yes (or accept-new).
type hostKeys struct {
	file      string   // the user's file; accept-new appends to it
	readOnly  []string // further files, only read
	acceptNew bool
	hash      bool // HashKnownHosts: write new lines with hashed names
	log       *slog.Logger

	mu sync.Mutex // serialises accept-new: read, check, append
}

// dummyHostKey is a key no server has, used to ask a known_hosts database
// which keys it holds for a host.
var dummyHostKey = func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// database reads the known_hosts files afresh (so that a key accepted by
// another connection, or added by the user, is seen). A missing file is an
// empty one.
func (h *hostKeys) database() (ssh.HostKeyCallback, error) {
	var files []string
	for i, f := range append([]string{h.file}, h.readOnly...) {
		fh, err := os.Open(f)
		switch {
		case err == nil:
			fh.Close()
			files = append(files, f)
		case errors.Is(err, os.ErrNotExist), i > 0:
			// missing, or a system file this user may not read
		default:
			return nil, backends.Describe(backends.ErrAuth, "cannot read the known hosts file %s: %v", f, unwrapPathError(err))
		}
	}
	if len(files) == 0 {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, backends.Describe(backends.ErrAuth, "cannot read the known hosts: %v", err)
	}
	return db, nil
}

// knownKeys lists the keys db holds for addr ("host:port").
func knownKeys(db ssh.HostKeyCallback, addr string) []knownhosts.KnownKey {
	var ke *knownhosts.KeyError
	if err := db(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}, dummyHostKey); errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// hostKeyAlgorithms are the algorithms of the keys known for a host, so
// that the server is asked for one of those (as OpenSSH does) rather than
// for the type x/crypto likes best, which would read as a changed key.
// nil when none is known: any type will do.
func hostKeyAlgorithms(known []knownhosts.KnownKey) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range known {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// hostCheck is the host key check of one connection attempt. failure
// holds the reason a key was refused, for the error of the handshake.
type hostCheck struct {
	h       *hostKeys
	addr    string // "host:port" as in known_hosts
	jump    bool   // the host is a ProxyJump hop
	db      ssh.HostKeyCallback
	known   []knownhosts.KnownKey
	failure error
}

// check prepares the host key check for e.
func (h *hostKeys) check(e *endpoint) (*hostCheck, error) {
	db, err := h.database()
	if err != nil {
		return nil, err
	}
	c := &hostCheck{h: h, addr: e.addr(), jump: e.jump, db: db}
	c.known = knownKeys(db, c.addr)
	return c, nil
}

// callback is the ssh.HostKeyCallback of the attempt.
func (c *hostCheck) callback(_ string, remote net.Addr, key ssh.PublicKey) error {
	err := c.db(c.addr, remote, key)
	if err == nil {
		return nil
	}
	var (
		ke *knownhosts.KeyError
		re *knownhosts.RevokedError
	)
	switch {
	case errors.As(err, &re):
		c.failure = backends.Describe(backends.ErrAuth,
			"the host key of %s (%s %s) is marked @revoked in %s line %d: refusing to connect",
			c.who(), key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) == 0:
		if c.h.acceptNew {
			c.failure = c.h.accept(c.addr, key)
			if c.failure == nil {
				return nil
			}
			break
		}
		c.failure = c.unknown(key)
	case errors.As(err, &ke):
		c.failure = c.changed(key, ke.Want)
	default:
		c.failure = backends.Describe(backends.ErrAuth, "checking the host key of %s: %v", c.who(), err)
	}
	return c.failure
}

// host names the server as known_hosts does: "name" or "[name]:port".
func (c *hostCheck) host() string { return knownhosts.Normalize(c.addr) }

// who names the server in messages: host(), with "the ProxyJump host"
// before it for a hop.
func (c *hostCheck) who() string {
	if c.jump {
		return "the ProxyJump host " + c.host()
	}
	return c.host()
}

func (c *hostCheck) unknown(key ssh.PublicKey) error {
	host, port, _ := net.SplitHostPort(c.addr)
	scan := "ssh-keyscan " + host
	if port != strconv.Itoa(DefaultPort) {
		scan = "ssh-keyscan -p " + port + " " + host
	}
	return backends.Describe(backends.ErrAuth,
		"the host key of %s is not known: the server offers %s key %s. "+
			"Check it with the server's administrator; then add it to %s "+
			"(`%s`, or connect once with ssh), or mount once with -o accept_new_host_key",
		c.who(), key.Type(), ssh.FingerprintSHA256(key), c.h.file, scan)
}

func (c *hostCheck) changed(key ssh.PublicKey, want []knownhosts.KnownKey) error {
	w := want[0]
	return backends.Describe(backends.ErrAuth,
		"the host key of %s has CHANGED: the server offers %s key %s, but %s line %d holds %s key %s. "+
			"Someone may be intercepting the connection (a man-in-the-middle attack), or the server's key was replaced. "+
			"Refusing to connect. If the change is expected (ask the server's administrator), "+
			"remove the old line %d of %s (`ssh-keygen -R %s`) and connect again",
		c.who(), key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line, w.Key.Type(),
		ssh.FingerprintSHA256(w.Key), w.Line, w.Filename, c.host())
}

// noCommonAlgorithm explains a handshake that failed because the server no
// longer offers a key of a type known for it.
func (c *hostCheck) noCommonAlgorithm() error {
	var types []string
	for _, k := range c.known {
		types = append(types, fmt.Sprintf("%s (%s line %d)", k.Key.Type(), k.Filename, k.Line))
	}
	return backends.Describe(backends.ErrAuth,
		"the host key of %s has CHANGED: the server offers no key of the types known for it: %s. "+
			"Someone may be intercepting the connection, or the server's keys were replaced. Refusing to connect. "+
			"If the change is expected, remove the old lines (`ssh-keygen -R %s`) and connect again",
		c.who(), strings.Join(types, ", "), c.host())
}

// accept adds key as the key of addr to the user's known_hosts file, if
// the host is still unknown there (another connection may have added it).
func (h *hostKeys) accept(addr string, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	db, err := h.database()
	if err != nil {
		return err
	}
	var ke *knownhosts.KeyError
	switch err := db(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}, key); {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		c := &hostCheck{h: h, addr: addr}
		return c.changed(key, ke.Want)
	}
	line := knownhosts.Line([]string{addr}, key) + "\n"
	if h.hash { // HashKnownHosts yes
		line = knownhosts.HashHostname(knownhosts.Normalize(addr)) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + "\n"
	}
	if err := appendLine(h.file, line); err != nil {
		return backends.Describe(backends.ErrAuth, "cannot add the host key of %s to %s: %v", knownhosts.Normalize(addr), h.file, err)
	}
	h.log.Warn("sftp: added a new host key to the known hosts (accept_new_host_key)",
		"host", knownhosts.Normalize(addr), "type", key.Type(), "fingerprint", ssh.FingerprintSHA256(key), "file", h.file)
	return nil
}

// appendLine appends line to file, creating its directory (0700) and the
// file (0600) as ssh does, and starting on a new line.
func appendLine(file, line string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil || err == io.EOF {
			if last[0] != '\n' {
				line = "\n" + line
			}
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
