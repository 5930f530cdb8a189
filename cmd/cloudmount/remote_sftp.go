package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/sftp"
)

// sftpKind is the SFTP backend: sftp://user@host:port/path, and the sshfs
// form user@host:path.
var sftpKind = backendKind{name: "sftp", scheme: "sftp", open: openSFTP}

// reservedSchemes are source prefixes that are not SSH host names, though
// "ftps:x" has the sshfs form host:path.
var reservedSchemes = map[string]bool{"ftp": true, "ftps": true}

// parseSFTPSource recognizes an SFTP source. ok is false when raw is not
// one (another backend's URL); the canonical URL has the path under "/~/"
// when it is relative to the login directory.
func parseSFTPSource(raw string) (source, bool, error) {
	lower := strings.ToLower(raw)
	isURL := strings.HasPrefix(lower, "sftp://")
	if !isURL && strings.Contains(raw, "://") {
		return source{}, false, nil
	}
	if isURL {
		if u, err := url.Parse(raw); err == nil {
			if _, ok := u.User.Password(); ok {
				return source{}, true, errors.New("do not put passwords in the URL; use the secrets file (" + secretsHint + ") or an SSH key")
			}
		}
		raw = "sftp://" + raw[len("sftp://"):]
	}
	if prefix, _, _ := strings.Cut(lower, ":"); !isURL && reservedSchemes[prefix] {
		return source{}, true, fmt.Errorf("unsupported source scheme %q: cloudmount mounts %s URLs", prefix, supportedSchemes())
	}
	host, port, user, p, ok := sftp.ParseSource(raw)
	if !ok {
		if isURL {
			return source{}, true, errors.New("SOURCE is not a valid sftp:// URL; the form is sftp://user@host:port/path")
		}
		return source{}, false, nil
	}
	h := strings.ToLower(host)
	if port != 0 && port != sftp.DefaultPort {
		h = net.JoinHostPort(h, strconv.Itoa(port))
	} else if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/~/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return source{URL: &url.URL{Scheme: "sftp", Host: h, Path: p}, User: user, Kind: sftpKind}, true, nil
}

// openSFTP connects to the SFTP server of cfg; sftp.New checks its host key
// and words its errors for the user.
func openSFTP(ctx context.Context, cfg *mountConfig, log *slog.Logger) (backends.Backend, error) {
	host, port, p, ok := sftpTarget(cfg.Source)
	if !ok {
		return nil, fmt.Errorf("bad sftp source %s", cfg.Source)
	}
	c := sftp.Config{
		Host: host, Port: port, User: cfg.User, Path: p,
		IdentityFiles: cfg.SSH.Identities, KnownHostsFile: cfg.SSH.KnownHosts,
		AcceptNewHostKey: cfg.SSH.AcceptNewHostKey, SSHConfigFile: cfg.SSH.Config,
		HomeDir: cfg.SSH.Home, AgentSocket: cfg.SSH.AgentSocket,
		Timeout: cfg.Timeout, Connections: sftpConnections(cfg.Transfers), Logger: log,
	}
	if cfg.Password != "" {
		pw := cfg.Password
		c.Password = func() (string, error) { return pw, nil }
		c.Passphrase = func(string) (string, error) { return pw, nil }
	}
	return sftp.New(ctx, c)
}

// sftpTarget is the server and remote path of a canonical SFTP source:
// "sftp://host/~/docs/" is docs in the login directory, "sftp://host/~/"
// the login directory, "sftp://host/" the server's root.
func sftpTarget(source string) (host string, port int, path string, ok bool) {
	if u, err := url.Parse(source); err == nil && u.Path != "/" {
		source = strings.TrimSuffix(source, "/")
	}
	host, port, _, path, ok = sftp.ParseSource(source)
	return host, port, path, ok
}

// maxSFTPConnections bounds the SSH connections of one mount: sshd's
// MaxStartups (10 by default) drops handshakes beyond it, and an SFTP
// connection carries several transfers at once.
const maxSFTPConnections = 5

// sftpConnections is the number of SSH connections for transfers uploads
// in parallel: one each, up to maxSFTPConnections, and one more for
// listings and reads.
func sftpConnections(transfers int) int { return min(transfers, maxSFTPConnections-1) + 1 }
