// Package sftp is the backend for SSH servers that speak SFTP (OpenSSH's
// sftp-server or internal-sftp, and the like): a pool of SSH connections,
// host keys checked against known_hosts, authentication as OpenSSH does it.
package sftp

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is what New needs to reach one SFTP server.
type Config struct {
	// Host is the server as given: a host name, an IP, or a ~/.ssh/config
	// Host alias.
	Host string
	// Port is the TCP port; 0: from the ssh config, else 22.
	Port int
	// User is the login name; "": from the ssh config, else the local user.
	User string
	// Path is the remote root; a relative path is relative to the login
	// directory ("" is the login directory itself).
	Path string
	// IdentityFiles are explicit private keys (-o identity=FILE), tried
	// before the ssh config's and the default ones.
	IdentityFiles []string
	// Password answers password and keyboard-interactive prompts; nil: none.
	// It is called at most once per connect (the pool reconnects), only
	// when the server asks, and within the connect's Timeout: it should
	// return a secret already at hand. It is never sent to a ProxyJump host.
	Password func() (string, error)
	// Passphrase decrypts an encrypted key file, only once the server has
	// accepted its public key; the decrypted key is kept for reconnects,
	// and a wrong passphrase is not asked for again. nil: encrypted keys
	// are skipped (and the authentication error says so).
	Passphrase func(keyFile string) (string, error)
	// PassphraseTries is how often Passphrase is asked for one key when
	// the answer does not decrypt it (default 1; a prompt on a terminal
	// may allow a few, as ssh does).
	PassphraseTries int
	// KnownHostsFile holds the trusted host keys; "": HomeDir/.ssh/known_hosts.
	KnownHostsFile string
	// AcceptNewHostKey adds the key of an unknown host to KnownHostsFile
	// (like StrictHostKeyChecking=accept-new); a changed key is never
	// accepted.
	AcceptNewHostKey bool
	// SSHConfigFile is the OpenSSH client config to read; "":
	// HomeDir/.ssh/config if it exists; "none": no config.
	SSHConfigFile string
	// HomeDir is the user's home, for the defaults under ~/.ssh.
	HomeDir string
	// AgentSocket is the ssh-agent socket (SSH_AUTH_SOCK); "": no agent.
	AgentSocket string
	// Timeout is the deadline of each remote call (default 30s).
	Timeout time.Duration
	// Connections is the number of SSH connections in the pool (default 4),
	// so that uploads never block listings or reads. New opens one; the
	// others follow in the background.
	Connections int
	// KeepAlive is the interval of SSH keep-alives (default 10s); a
	// connection that misses three is dead.
	KeepAlive time.Duration
	// LeftoverAge is how old cloudmount's temporary files (uploads cut
	// off by a killed mount) must be before a listing of their directory
	// removes them; 0: DefaultLeftoverAge. Running uploads of other
	// mounts are never taken for leftovers.
	LeftoverAge time.Duration
	// Logger receives the backend's logs; nil: slog.Default().
	Logger *slog.Logger
	// Dial opens the TCP connection; nil: a net.Dialer. For tests and the
	// fault proxy.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults of Config.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultConnections = 4
	DefaultKeepAlive   = 10 * time.Second
	DefaultPort        = 22
)

// ParseSource splits a mount source in one of two forms: the URL
// "sftp://user@host:port/path" (path absolute, URL-escaped; an empty path
// is the login directory) or the sshfs form "user@host:path", "host:path",
// "host:" (path relative to the login directory unless it starts with a
// slash). In the URL form "/~/dir" is relative to the login directory, as
// in the sftp URI draft. IPv6 addresses go in brackets: "sftp://[::1]:2222/x", "[::1]:x".
// port is 0 when the source names none. ok is false when s is neither form.
func ParseSource(s string) (host string, port int, user, path string, ok bool) {
	if strings.HasPrefix(s, "sftp://") {
		return parseURL(s)
	}
	if strings.Contains(s, "://") {
		return "", 0, "", "", false
	}
	rest := s
	if at := strings.LastIndexByte(s[:hostColon(s)], '@'); at >= 0 {
		// The user name may itself hold an '@' (user@domain@host:path);
		// the host never does, and the path (which may hold anything)
		// starts after the host's ':'.
		user, rest = s[:at], s[at+1:]
		if user == "" {
			return "", 0, "", "", false
		}
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 || len(rest) <= end+1 || rest[end+1] != ':' {
			return "", 0, "", "", false
		}
		host, path = rest[1:end], rest[end+2:]
	} else {
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", 0, "", "", false
		}
		host, path = rest[:i], rest[i+1:]
	}
	if !validHost(host) {
		return "", 0, "", "", false
	}
	return host, 0, user, path, true
}

// hostColon returns the index of the ':' that ends the host in an sshfs
// source (the first ':' outside brackets), or len(s) when there is none.
func hostColon(s string) int {
	inBrackets := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			inBrackets = true
		case ']':
			inBrackets = false
		case ':':
			if !inBrackets {
				return i
			}
		}
	}
	return len(s)
}

func parseURL(s string) (host string, port int, user, path string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "sftp" || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", 0, "", "", false
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			// A password in a URL ends up in shell history and ps; refuse.
			return "", 0, "", "", false
		}
		user = u.User.Username()
		if user == "" {
			return "", 0, "", "", false
		}
	}
	host = u.Hostname()
	if !validHost(host) {
		return "", 0, "", "", false
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, "", "", false
		}
		port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return "", 0, "", "", false
	}
	path = u.Path
	switch {
	case path == "/~" || path == "/~/":
		path = "" // the login directory, as in the sftp URI draft
	case strings.HasPrefix(path, "/~/"):
		path = path[3:]
	}
	return host, port, user, path, true
}

// validHost reports whether h can be a host name, an IP or an ssh config
// alias: not empty, no blanks, no control characters, no slashes.
func validHost(h string) bool {
	if h == "" || strings.HasPrefix(h, "-") {
		return false
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f || r == '/' || r == '@' || r == '[' || r == ']' {
			return false
		}
	}
	return true
}
