// Package tahoe is the Tahoe-LAFS backend: a directory capability on a
// grid, reached through the web API of a client node (plain net/http; no
// library speaks it).
//
// # Mapping
//
// Files are uploaded as immutable CHK files (PUT /uri, which returns the
// file's cap) and then linked into their directory with their metadata in
// one change of that directory (POST ?t=set_children); the links of
// concurrent uploads into one directory share one such change, since each
// change rewrites the whole dirnode (batch.go). A file's Version is
// the SHA-256 (hex) of its cap: convergent encryption makes the cap a name
// of the content, so the content changes exactly when the cap does.
// Directories are mutable dirnodes; Rename is t=relink, Remove t=unlink.
//
// Every change of a directory is sent to the directory's own write cap,
// found by listing it first (GET ?t=json): Tahoe creates missing
// intermediate directories for any PUT or POST addressed by a path, which a
// filesystem must never do (Mkdir under a missing directory would make it).
// The listing also gives what the change needs to check: whether the name
// is taken, by what, with which metadata.
//
// # Metadata
//
// Metadata lives on the edge (the directory entry), as JSON:
//
//	"mtime": 1700000000.123456   float seconds, as tahoe backup and the SFTP
//	"ctime": 1700000000.123456   frontend write them; ctime is the time of
//	                             cloudmount's last change of the edge
//	"cloudmount": {
//	    "mode":    420,          permission bits (0o7777)
//	    "uid":     1000,
//	    "gid":     1000,
//	    "sha256":  "…",          lower-case hex of the content
//	    "type":    "symlink",    "symlink", "fifo" or "socket"
//	    "version": "…"           the Version the content-bound keys (mtime,
//	}                            sha256, type) were written for
//
// Keys of other tools are kept when an edge is rewritten. An entry's
// ModTime is "mtime", else tahoe.linkmotime (which Tahoe bumps on every
// change of the edge). Tahoe keeps the user metadata when another client
// replaces a file by a path PUT, so mtime, sha256 and type are taken only
// while the stamped version is the file's current one. The owner and mode
// fall back to tahoe backup's st_uid, st_gid and st_mode.
//
// # Limits
//
// Tahoe has no compare-and-swap: a condition (PutOptions.IfMatch,
// SetMeta's ifVersion, the emptiness of a directory to remove or replace)
// is checked on a listing made right before the change, and a change made
// by another client in between is not seen. A Rename is two changes (link
// at the new name, unlink the old), not atomic. Use one writer per
// directory (the node serialises its own writes). The caps of directories
// listed lately are used for up to dirCapTTL instead of walking their
// paths (dircaps.go): a directory another client moves or removes is
// still written to by its old path for that long.
//
// Capabilities are secrets: they never appear in a log line, an error, a
// String(), an Entry or a Version (Redact, scrubCaps).
package tahoe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Backend is a Tahoe-LAFS directory used as a backends.Backend. It is safe
// for concurrent use.
type Backend struct {
	base      string // the node's URL, with a trailing slash: "http://127.0.0.1:3456/"
	hostPort  string // "127.0.0.1:3456", for messages
	root      string // the root directory cap: a secret
	redacted  string // Redact(root)
	readOnly  bool
	timeout   time.Duration
	log       *slog.Logger
	client    *http.Client
	transport *http.Transport // ours, closed by Close; nil for Config.HTTPClient
	started   time.Time       // the root's ModTime: the root has no edge

	// jitter is the pause before retrying a directory change that
	// collided with another writer's (UncoordinatedWriteError).
	jitter func() time.Duration

	// batches groups the links of concurrent uploads into one directory
	// (batch.go).
	batches batcher
	// caps remembers the caps of the file versions listed lately, for
	// reads by version (caps.go).
	caps capMemo
	// dirs remembers the caps of the directories listed lately, by path
	// (dircaps.go).
	dirs dirCaps
}

var (
	_ backends.Backend       = (*Backend)(nil)
	_ backends.MetaSetter    = (*Backend)(nil)
	_ backends.SizedReader   = (*Backend)(nil)
	_ backends.VersionReader = (*Backend)(nil)
)

// New checks that the node at cfg.NodeURL answers and that cfg.Cap is a
// directory it can read. Its errors are meant for the user as they are;
// none quotes the cap.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.NodeURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("tahoe: the node URL must be of the form http://127.0.0.1:3456/ (see NODEDIR/node.url)")
	}
	cap := strings.TrimSpace(cfg.Cap)
	if cap == "" {
		return nil, errors.New("tahoe: no directory capability given")
	}
	kind, _, ok := capKind(cap)
	if !ok {
		return nil, errors.New("tahoe: the capability is not one (a directory capability is the text tahoe list-aliases shows for the alias)")
	}
	k, known := capKinds[kind]
	switch {
	case !known:
		return nil, backends.Describe(backends.ErrUnsupported, "tahoe: %s is a capability of a kind cloudmount does not know; "+
			"give a directory capability (kind DIR2 or DIR2-RO)", Redact(cap))
	case !k.dir:
		return nil, backends.Describe(backends.ErrNotDir, "tahoe: %s is the capability of a file, not of a directory", Redact(cap))
	case k.verify:
		return nil, backends.Describe(backends.ErrPermission, "tahoe: %s is a verify capability, which cannot read the directory; "+
			"give a read (DIR2-RO) or write (DIR2) capability", Redact(cap))
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, "/") + "/"
	u.RawPath = ""
	b := &Backend{
		base:     u.String(),
		hostPort: u.Host,
		root:     cap,
		redacted: Redact(cap),
		readOnly: IsReadOnlyCap(cap),
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
		client:   cfg.HTTPClient,
		jitter:   defaultJitter,
		started:  time.Now(),
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		b.hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.client == nil {
		b.transport = &http.Transport{
			Proxy:                 nil, // the node is local: never through a proxy
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   16,
		}
		b.client = &http.Client{
			Transport: b.transport,
			// Tahoe redirects only for when_done=, which we never send;
			// a redirect is an answer to report, not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if err := b.checkRoot(ctx); err != nil {
		b.Close()
		return nil, err
	}
	b.log.Debug("tahoe connected", "backend", b.String(), "read_only", b.readOnly)
	return b, nil
}

// checkRoot lists the root and explains what is wrong.
func (b *Backend) checkRoot(ctx context.Context) error {
	l, err := b.listDir(ctx, "open", "", func(string) bool { return false })
	switch {
	case isGridError(err):
		var ne *NodeError
		errors.As(err, &ne)
		return backends.Describe(backends.ErrUnavailable, "tahoe: the node at %s could not retrieve the root directory %s: "+
			"not enough storage servers are connected, or the grid does not have that directory (unknown cap) (HTTP %d: %s)",
			b.hostPort, b.redacted, ne.Code, ne.Message)
	case errors.Is(err, backends.ErrNotDir):
		return backends.Describe(backends.ErrNotDir, "tahoe: %s is not a directory", b.redacted)
	case errors.Is(err, backends.ErrProtocol) && httpCode(err) == http.StatusBadRequest:
		return backends.Describe(backends.ErrProtocol, "tahoe: the node at %s does not take %s as a capability (%v)", b.hostPort, b.redacted, err)
	case err != nil:
		return fmt.Errorf("tahoe: %w", err)
	}
	if !b.readOnly && l.self.rw == "" {
		// The kind says writable but the node gives no write cap: trust
		// the node, the mount could not change anything anyway.
		b.readOnly = true
	}
	return nil
}

// String names the backend for logs: "tahoe:DIR2#3f2a1b".
func (b *Backend) String() string { return "tahoe:" + b.redacted }

// GoString is String, so that %#v shows no cap.
func (b *Backend) GoString() string { return b.String() }

// LogValue is String, so that slog shows no cap.
func (b *Backend) LogValue() slog.Value { return slog.StringValue(b.String()) }

// Close releases idle connections.
func (b *Backend) Close() error {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// Capabilities reports what a Tahoe directory keeps: every kind of metadata,
// on the edge; nothing is probed.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	stored := backends.MetaField{Stored: true}
	c := backends.Capabilities{
		MTime:     backends.MetaField{Stored: true, Precision: time.Microsecond},
		Mode:      stored,
		Owner:     stored,
		Hash:      stored,
		Type:      stored,
		AtomicPut: true, // a file is linked whole, once uploaded
		ReadOnly:  b.readOnly,
		Notes: []string{
			"rename is two changes on the grid (link at the new name, then unlink the old): not atomic; " +
				"both names may exist for a moment, and a crash between can leave both",
			"Tahoe has no compare-and-swap: conditional uploads, conditional metadata changes and " +
				"the emptiness check of rmdir look at a listing made just before the change; another " +
				"client's change in between is not seen (use one writer per directory)",
			"Tahoe stores names in Unicode NFC: a name created in another form is listed in NFC",
			"a removed or replaced file keeps its space on the grid until its leases expire",
		},
	}
	if b.readOnly {
		c.Notes = append(c.Notes, "read-only capability "+b.redacted+": the mount is read-only")
	}
	return c, nil
}

// callContext bounds a short call by the configured timeout.
func (b *Backend) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

// defaultJitter is a random pause of 100 to 800 ms.
func defaultJitter() time.Duration {
	return 100*time.Millisecond + rand.N(700*time.Millisecond)
}
