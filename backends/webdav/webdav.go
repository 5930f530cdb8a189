// Package webdav is the WebDAV backend: a backends.Backend over any RFC 4918
// server (Apache mod_dav, nginx's dav modules, ownCloud/Nextcloud, rclone
// serve webdav, …).
//
// Metadata (mtime with nanoseconds, mode, owner, sha256, special-file type)
// is stored as dead properties in the namespace NS where the server keeps
// them, and mtime is also sent as X-OC-Mtime to servers that accept it.
// ETags are the version, or size and getlastmodified where a server sends
// none (nginx); uploads are conditional (If-Match, If-None-Match), checked
// by the server where it honours them, else by the client around an upload
// to a temporary name (see Put).
//
// All requests are written with net/http rather than gowebdav: every call
// needs a context, per-request headers (If-Match, X-OC-Mtime), our own
// PROPFIND property lists and PROPPATCH, uploads that are never buffered
// (gowebdav's default authorizer copies a non-seekable body into memory to
// replay it), and exact status handling (gowebdav creates missing parents on
// PUT and MOVE and turns MKCOL's 405 into success, which a filesystem must
// not do).
package webdav

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/tlsclient"
)

// Config says where the server is and how to log in.
type Config struct {
	URL      string             // http:// or https:// URL of the collection that becomes the mount root
	User     string             // "" = no authentication
	Password string             // never logged, never in an error
	TLS      tlsclient.Settings // for https: trusted CAs, pins, client certificate
	Timeout  time.Duration      // deadline of one remote call when ctx has none shorter (default 30s)
	Logger   *slog.Logger       // nil = slog.Default()
	// MaxListingEntries bounds the entries of one PROPFIND reply (0:
	// DefaultMaxListingEntries); a larger reply is an error.
	MaxListingEntries int
	// MaxListingBytes bounds the size of one PROPFIND reply (0:
	// DefaultMaxListingBytes); a larger reply is an error.
	MaxListingBytes int64
	// ChunkSize is the size of the chunks of an upload to Nextcloud, and
	// the file size above which uploads go in chunks (0: DefaultChunkSize).
	// Nextcloud wants 5 MB to 5 GB (the command line keeps it so); the
	// backend takes any positive size, for tests against an emulation.
	ChunkSize int64
}

// DefaultTimeout bounds one remote call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

const userAgent = "cloudmount"

// Backend is a WebDAV collection used as a backends.Backend. It is safe for
// concurrent use.
type Backend struct {
	scheme      string // "http" or "https"
	host        string // as in the URL
	origin      string // "https://host:port"
	rootPath    string // decoded URL path of the root, with trailing slash
	rootEscaped string // the same, percent-encoded
	hostPort    string // "host:port" for messages
	limits      msLimits
	user        string
	password    string
	timeout     time.Duration
	log         *slog.Logger
	tls         tlsclient.Settings
	transport   *http.Transport
	client      *http.Client
	putClient   *http.Client // client with refuseRedirects, for uploads

	weak weakTags

	capsMu   sync.Mutex // protects caps
	caps     *backends.Capabilities
	mkcolLax atomic.Bool // set by the probe: MKCOL on an existing collection succeeds
	// ocMtime is set by the probe: uploads carry X-OC-Mtime.
	ocMtime atomic.Bool
	// ocChecksum is set by the probe: uploads carry OC-Checksum.
	ocChecksum atomic.Bool
	// oc: ownCloud/Nextcloud findings and chunked uploads (nextcloud*.go).
	oc ocState
}

var (
	_ backends.Backend     = (*Backend)(nil)
	_ backends.MetaSetter  = (*Backend)(nil)
	_ backends.QuotaReader = (*Backend)(nil)
)

// New connects to cfg.URL and verifies that it is a WebDAV collection the
// user may read. Its errors are meant to be shown to the user as they are.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("webdav: bad URL: %v", redactURLError(err))
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "dav":
		u.Scheme = "http"
	case "https", "davs":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("webdav: URL %s must start with http:// or https://", redact(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("webdav: URL %s has no host", redact(u))
	}
	b := &Backend{
		user:     cfg.User,
		password: cfg.Password,
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
	}
	if u.User != nil {
		if b.user == "" {
			b.user = u.User.Username()
		}
		if pw, ok := u.User.Password(); ok && b.password == "" {
			b.password = pw
		}
		u.User = nil
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.scheme, b.host = u.Scheme, u.Host
	b.origin = u.Scheme + "://" + u.Host
	b.rootPath = strings.TrimSuffix(u.Path, "/") + "/"
	b.rootEscaped = strings.TrimSuffix(u.EscapedPath(), "/") + "/"
	b.hostPort = u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		b.hostPort = net.JoinHostPort(u.Hostname(), port)
	}
	b.oc.chunkSize = cfg.ChunkSize
	if b.oc.chunkSize <= 0 {
		b.oc.chunkSize = DefaultChunkSize
	}
	b.limits = msLimits{entries: cfg.MaxListingEntries, bytes: cfg.MaxListingBytes, server: b.hostPort}
	if b.limits.entries <= 0 {
		b.limits.entries = DefaultMaxListingEntries
	}
	if b.limits.bytes <= 0 {
		b.limits.bytes = DefaultMaxListingBytes
	}
	if err := b.newClient(cfg.TLS); err != nil {
		return nil, err
	}
	if err := b.checkRoot(ctx); err != nil {
		b.transport.CloseIdleConnections()
		return nil, err
	}
	b.log.Debug("webdav connected", "server", b.String())
	return b, nil
}

// newClient sets up the HTTP client: bounded dial, handshake and header
// waits, connection reuse, no redirects (a redirect is an error the user must
// fix in the URL, and following one could send the password elsewhere).
func (b *Backend) newClient(settings tlsclient.Settings) error {
	tlsConf, err := settings.Config()
	if err != nil {
		return fmt.Errorf("webdav: %w", err)
	}
	b.tls = settings
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	b.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: b.timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	// Session cookies (ownCloud, Nextcloud) spare the server a password
	// check on every request; the jar keeps them for this process only.
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	b.client = &http.Client{
		Transport: b.transport,
		Jar:       jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	b.putClient = &http.Client{
		Transport:     refuseRedirects{b.transport},
		Jar:           jar,
		CheckRedirect: b.client.CheckRedirect,
	}
	return nil
}

// checkRoot asks for the root's properties and explains what is wrong.
func (b *Backend) checkRoot(ctx context.Context) error {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "PROPFIND", dir: true, depth: "0", body: propfindBody})
	if err != nil {
		return unwrapOp(err)
	}
	defer drain(resp)
	where := b.origin + b.rootEscaped
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized && b.user == "":
		return backends.Describe(backends.ErrAuth, "the server at %s asks for a user name and password", where)
	case code == http.StatusUnauthorized:
		return backends.Describe(backends.ErrAuth, "the server refused user %q (wrong user name or password)", b.user)
	case code == http.StatusForbidden:
		return backends.Describe(backends.ErrPermission, "the server denies user %q access to %s", b.user, where)
	case isRedirect(code):
		return backends.Describe(backends.ErrProtocol, "URL is not a WebDAV collection: %s redirects to %s; use that URL", where, resp.Header.Get("Location"))
	case code != http.StatusMultiStatus:
		sentinel := statusErrors[code]
		if sentinel == nil || code == http.StatusOK {
			sentinel = backends.ErrProtocol
		}
		what := resp.Status
		if ct := resp.Header.Get("Content-Type"); code < 300 && ct != "" {
			what += ", a " + ct + " reply"
		}
		return backends.Describe(sentinel, "URL is not a WebDAV collection: %s answered PROPFIND with HTTP %s", where, what)
	}
	res, err := decodeMultistatus(resp.Body, b.limits)
	if err != nil {
		return fmt.Errorf("URL is not a WebDAV collection: %s: %w", where, err)
	}
	self, ok := b.pickSelf(res, "")
	if !ok {
		return backends.Describe(backends.ErrProtocol, "URL is not a WebDAV collection: %s sent no properties for it", where)
	}
	if !self.isDir {
		return backends.Describe(backends.ErrNotDir, "URL is not a WebDAV collection: %s is a file", where)
	}
	return nil
}

// unwrapOp strips the "PROPFIND /: " prefix a call error carries, for New's
// messages, which speak of the URL rather than of a path.
func unwrapOp(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// String names the backend for logs: "webdav https://user@host/path/".
func (b *Backend) String() string {
	u := url.URL{Scheme: b.scheme, Host: b.host, Path: b.rootPath, RawPath: b.rootEscaped}
	if b.user != "" {
		u.User = url.User(b.user)
	}
	return "webdav " + u.String()
}

// Close releases idle connections.
func (b *Backend) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// redact renders u without its password.
func redact(u *url.URL) string {
	return u.Redacted()
}

// redactURLError hides a password that url.Parse quotes in its error.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s", ue.Err)
	}
	return err
}
