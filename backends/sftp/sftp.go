package sftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Backend is a directory on an SFTP server as a backends.Backend. It is
// safe for concurrent use.
//
// Versions are backends.StatVersion(size, mtime) of the SFTP attributes,
// which (protocol version 3) carry the mtime in whole seconds: a rewrite
// within the same second that keeps the size is not seen.
type Backend struct {
	target   *endpoint
	hops     []*endpoint // ProxyJump, in connection order
	hostPort string      // for messages: "host:port"
	root     string      // absolute remote path of the mount root
	timeout  time.Duration
	dialFn   func(ctx context.Context, network, addr string) (net.Conn, error)
	log      *slog.Logger
	hostKeys *hostKeys
	auth     *authenticator
	pool     *pool

	keepAlive time.Duration
	poolSize  int
	// promptTime is how much longer a login may take because a person
	// answers a prompt meanwhile (Unlock); 0 for the daemon's logins.
	promptTime time.Duration

	// Found on the first connection.
	posixRename bool // posix-rename@openssh.com
	hardlink    bool // hardlink@openssh.com
	statvfs     bool // statvfs@openssh.com
	canHash     bool // sha256sum runs over exec
	hashNote    string

	capsMu sync.Mutex // protects caps
	caps   *backends.Capabilities

	orphansMu sync.Mutex      // protects orphans
	orphans   map[string]bool // temporary files to remove once connected again

	leftoverAge time.Duration   // Config.LeftoverAge
	sweptMu     sync.Mutex      // protects swept
	swept       map[string]bool // leftovers removed or tried, by path
}

var (
	_ backends.Backend     = (*Backend)(nil)
	_ backends.MetaSetter  = (*Backend)(nil)
	_ backends.QuotaReader = (*Backend)(nil)
	_ backends.Symlinker   = (*Backend)(nil)
	_ backends.Linker      = (*Backend)(nil)
	_ backends.Hasher      = (*Backend)(nil)
	_ backends.SizedReader = (*Backend)(nil)
)

// New connects to the server once, failing with an error meant for the
// user when the host key is unknown or changed, the login is refused or
// the server is unreachable, and resolves Config.Path to an absolute
// directory. Further connections of the pool are opened when needed.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	b.pool = newPool(b.poolSize, b.timeout, b.hostPort, b.log, b.connect)
	b.pool.onConnect = b.cleanOrphans
	b.pool.mu.Lock()
	b.pool.add(c)
	b.pool.mu.Unlock()
	_, b.posixRename = c.sftp.HasExtension("posix-rename@openssh.com")
	_, b.hardlink = c.sftp.HasExtension("hardlink@openssh.com")
	_, b.statvfs = c.sftp.HasExtension("statvfs@openssh.com")

	if err := b.resolveRoot(ctx, cfg.Path); err != nil {
		b.pool.close()
		return nil, err
	}
	b.probeHash(ctx)
	// The other connections, so that uploads have their own.
	b.pool.fill()
	b.log.Debug("sftp connected", "server", b.String(), "posix_rename", b.posixRename,
		"hardlink", b.hardlink, "statvfs", b.statvfs, "sha256sum", b.canHash)
	return b, nil
}

// prepare checks cfg and resolves it through the ssh config: the server,
// the ProxyJump hops, the known hosts and the keys. It connects nowhere.
func prepare(cfg Config) (*Backend, error) {
	if !validHost(cfg.Host) {
		return nil, fmt.Errorf("sftp: bad host name %q", cfg.Host)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("sftp: bad port %d", cfg.Port)
	}
	b := &Backend{timeout: cfg.Timeout, keepAlive: cfg.KeepAlive, log: cfg.Logger, dialFn: cfg.Dial}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.keepAlive <= 0 {
		b.keepAlive = DefaultKeepAlive
	}
	if b.leftoverAge = cfg.LeftoverAge; b.leftoverAge <= 0 {
		b.leftoverAge = DefaultLeftoverAge
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.poolSize = cfg.Connections
	if b.poolSize <= 0 {
		b.poolSize = DefaultConnections
	}
	local := localUserName()
	sc, err := loadSSHConfig(cfg.SSHConfigFile, cfg.HomeDir, local)
	if err != nil {
		return nil, err
	}
	if b.target, err = sc.resolve(cfg.Host, cfg.Port, cfg.User); err != nil {
		return nil, err
	}
	if b.target.proxyJump != "" {
		if b.hops, err = sc.jumpHops(b.target.proxyJump); err != nil {
			return nil, err
		}
	}
	b.hostPort = b.target.addr()

	b.hostKeys = &hostKeys{file: cfg.KnownHostsFile, acceptNew: cfg.AcceptNewHostKey, log: b.log,
		hash: strings.EqualFold(sc.get(cfg.Host, "HashKnownHosts"), "yes")}
	if b.hostKeys.file == "" {
		if f := sc.get(cfg.Host, "UserKnownHostsFile"); f != "" && !strings.EqualFold(f, "none") {
			b.hostKeys.file = sc.expand(strings.Fields(f)[0], b.target)
		} else if cfg.HomeDir != "" {
			b.hostKeys.file = filepath.Join(cfg.HomeDir, ".ssh", "known_hosts")
		} else {
			return nil, errors.New("sftp: no known hosts file: set the home directory or the known_hosts option")
		}
		b.hostKeys.readOnly = []string{globalKnownHosts}
	}
	b.auth = &authenticator{
		agentSocket: cfg.AgentSocket,
		password:    cfg.Password,
		passphrase:  cfg.Passphrase,
		tries:       cfg.PassphraseTries,
		defaults:    defaultKeyFiles(cfg.HomeDir),
	}
	for _, f := range cfg.IdentityFiles {
		b.auth.explicit = append(b.auth.explicit, sc.expand(f, b.target))
	}
	return b, nil
}

// resolveRoot makes the mount root absolute (relative paths are relative
// to the login directory) and checks that it is a directory.
func (b *Backend) resolveRoot(ctx context.Context, p string) error {
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return err
	}
	defer s.end(nil)
	asked := p
	if p == "" {
		p = "."
	}
	var real string
	err = s.do(func(c *sftp.Client) error {
		var err error
		real, err = c.RealPath(p)
		return err
	})
	if err == nil && !path.IsAbs(real) {
		err = fmt.Errorf("the server resolved %q to %q, which is not absolute", p, real)
	}
	if err != nil {
		if errors.Is(classify(err), backends.ErrNotFound) {
			return backends.Describe(backends.ErrNotFound, "the remote directory %s does not exist on %s", backends.Escape(asked), b.hostPort)
		}
		return fmt.Errorf("sftp: resolving the remote path %s: %w", backends.Escape(asked), opError("realpath", "", err))
	}
	b.root = path.Clean(real)
	var fi os.FileInfo
	err = s.do(func(c *sftp.Client) error {
		var err error
		fi, err = c.Stat(b.root)
		return err
	})
	switch {
	case err != nil && errors.Is(classify(err), backends.ErrNotFound):
		return backends.Describe(backends.ErrNotFound, "the remote directory %s does not exist on %s", backends.Escape(b.root), b.hostPort)
	case err != nil:
		return fmt.Errorf("sftp: the remote directory %s: %w", backends.Escape(b.root), opError("stat", "", err))
	case !fi.IsDir():
		return backends.Describe(backends.ErrNotDir, "the remote path %s on %s is not a directory", backends.Escape(b.root), b.hostPort)
	}
	return nil
}

// String names the backend for logs: "sftp://user@host:port/path".
func (b *Backend) String() string {
	u := url.URL{Scheme: "sftp", User: url.User(b.target.user),
		Host: net.JoinHostPort(b.target.alias, strconv.Itoa(b.target.port)), Path: b.root}
	return u.String()
}

// Close closes every connection.
func (b *Backend) Close() error {
	b.pool.close()
	return nil
}

// CanHash reports whether SHA256 works: the server ran sha256sum for the
// probe in New.
func (b *Backend) CanHash() bool { return b.canHash }

// cleanPath makes a relative path canonical: no leading slash, no dot
// segments ("" is the root).
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// remote is the absolute server path of the relative path p.
func (b *Backend) remote(p string) string {
	if p == "" {
		return b.root
	}
	return path.Join(b.root, p)
}
