package sftp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// endpoint is one SSH server to log in to, as the ssh config resolves a
// host given on the command line (the mount's or a ProxyJump hop's).
type endpoint struct {
	alias    string // as given: a name, an IP or a Host alias
	hostName string // what to connect to and check in known_hosts
	port     int
	user     string
	// identityFiles are the ssh config's IdentityFile lines, expanded.
	identityFiles []string
	// identitiesOnly: offer only the keys of identity files, also from the
	// agent (IdentitiesOnly yes).
	identitiesOnly bool
	// proxyJump is the ssh config's ProxyJump ("" or "none": direct).
	proxyJump string
	// jump: this is a ProxyJump hop, not the server of the mount.
	jump bool
}

// label names e in messages: "host:port", with "the ProxyJump host"
// before it for a hop.
func (e *endpoint) label() string {
	if e.jump {
		return "the ProxyJump host " + e.addr()
	}
	return e.addr()
}

// addr is "host:port" for dialing and for known_hosts.
func (e *endpoint) addr() string {
	return net.JoinHostPort(e.hostName, strconv.Itoa(e.port))
}

// sshConfig is a parsed OpenSSH client config; nil reads as empty.
type sshConfig struct {
	file      string
	cfg       *ssh_config.Config
	home      string
	localUser string
}

// loadSSHConfig reads the config named by Config.SSHConfigFile: "none" is
// none, "" is home/.ssh/config if it exists. A config that cannot be read
// is an error: going on without it could connect to another host or as
// another user than the one the user configured.
func loadSSHConfig(file, home, localUser string) (*sshConfig, error) {
	s := &sshConfig{home: home, localUser: localUser}
	switch file {
	case "none":
		return s, nil
	case "":
		if home == "" {
			return s, nil
		}
		file = filepath.Join(home, ".ssh", "config")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return s, nil
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("sftp: reading the ssh config: %w", err)
	}
	defer f.Close()
	// A fresh decoder, never the package's global settings: those read the
	// process owner's ~/.ssh/config and /etc/ssh/ssh_config on their own.
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("sftp: the ssh config %s does not parse (%v); fix it, or mount with -o ssh_config=none", file, err)
	}
	s.file, s.cfg = file, cfg
	return s, nil
}

// get returns the first value of key for host alias, "" if none.
func (s *sshConfig) get(alias, key string) string {
	if s == nil || s.cfg == nil {
		return ""
	}
	v, err := s.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(v)
}

// getAll returns every value of key for host alias.
func (s *sshConfig) getAll(alias, key string) []string {
	if s == nil || s.cfg == nil {
		return nil
	}
	v, err := s.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}

// resolve works out the endpoint of host (an alias or a name) with the
// explicit port and user taking precedence over the config's.
func (s *sshConfig) resolve(host string, port int, userName string) (*endpoint, error) {
	e := &endpoint{alias: host, hostName: host, port: port, user: userName}
	if hn := s.get(host, "HostName"); hn != "" {
		e.hostName = strings.ReplaceAll(hn, "%h", host)
		e.hostName = strings.ReplaceAll(e.hostName, "%%", "%")
	}
	if e.port == 0 {
		if p := s.get(host, "Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("sftp: the ssh config %s gives host %s the port %q, which is not a port number", s.file, host, p)
			}
			e.port = n
		} else {
			e.port = DefaultPort
		}
	}
	if e.user == "" {
		e.user = s.get(host, "User")
	}
	if e.user == "" {
		e.user = s.localUser
	}
	if e.user == "" {
		return nil, errors.New("sftp: no user name: give one (user@host) or set User in the ssh config")
	}
	for _, f := range s.getAll(host, "IdentityFile") {
		if strings.EqualFold(f, "none") {
			continue
		}
		e.identityFiles = append(e.identityFiles, s.expand(f, e))
	}
	e.identitiesOnly = strings.EqualFold(s.get(host, "IdentitiesOnly"), "yes")
	e.proxyJump = s.get(host, "ProxyJump")
	if strings.EqualFold(e.proxyJump, "none") {
		e.proxyJump = ""
	}
	return e, nil
}

// expand resolves ~ and the tokens %d (home), %u (local user), %r (remote
// user), %h (host name), %p (port) and %% of a path from the ssh config.
func (s *sshConfig) expand(p string, e *endpoint) string {
	if p == "~" {
		p = s.home
	} else if strings.HasPrefix(p, "~/") {
		p = filepath.Join(s.home, p[2:])
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case 'd':
			b.WriteString(s.home)
		case 'u':
			b.WriteString(s.localUser)
		case 'r':
			b.WriteString(e.user)
		case 'h':
			b.WriteString(e.hostName)
		case 'p':
			b.WriteString(strconv.Itoa(e.port))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// jumpHops parses a ProxyJump value, "[user@]host[:port][,…]" or
// "ssh://[user@]host[:port]" per hop, into the hops in connection order,
// each resolved through the ssh config.
func (s *sshConfig) jumpHops(value string) ([]*endpoint, error) {
	var hops []*endpoint
	for _, h := range strings.Split(value, ",") {
		h = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(h), "ssh://"))
		h = strings.TrimSuffix(h, "/")
		if h == "" {
			return nil, fmt.Errorf("sftp: ProxyJump %q has an empty hop", value)
		}
		var u string
		if i := strings.LastIndexByte(h, '@'); i >= 0 {
			u, h = h[:i], h[i+1:]
		}
		host, port := h, 0
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			n, err := strconv.Atoi(pp)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("sftp: ProxyJump %q: bad port %q", value, pp)
			}
			host, port = hh, n
		} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		}
		if !validHost(host) {
			return nil, fmt.Errorf("sftp: ProxyJump %q: bad host %q", value, host)
		}
		e, err := s.resolve(host, port, u)
		if err != nil {
			return nil, err
		}
		e.jump = true
		hops = append(hops, e)
	}
	return hops, nil
}

// localUserName is the name of the user running the mount.
func localUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
