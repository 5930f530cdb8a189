package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	c, err := sftpConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.Password != "" {
		pw := cfg.Password
		c.Password = func() (string, error) { return pw, nil }
	}
	if cfg.Password != "" || len(cfg.SSH.Passphrases) > 0 {
		// A passphrase typed at the mount command for that key, else the
		// source's secret.
		typed, pw := cfg.SSH.Passphrases, cfg.Password
		c.Passphrase = func(keyFile string) (string, error) {
			if p, ok := typed[keyFile]; ok {
				return p, nil
			}
			if pw == "" {
				return "", errors.New("no passphrase was typed for it, and the secrets file has none for this source")
			}
			return pw, nil
		}
	}
	return sftp.New(ctx, c)
}

// sftpConfig is the backend's configuration of cfg, without secrets.
func sftpConfig(cfg *mountConfig, log *slog.Logger) (sftp.Config, error) {
	host, port, p, ok := sftpTarget(cfg.Source)
	if !ok {
		return sftp.Config{}, fmt.Errorf("bad sftp source %s", cfg.Source)
	}
	return sftp.Config{
		Host: host, Port: port, User: cfg.User, Path: p,
		IdentityFiles: cfg.SSH.Identities, KnownHostsFile: cfg.SSH.KnownHosts,
		AcceptNewHostKey: cfg.SSH.AcceptNewHostKey, SSHConfigFile: cfg.SSH.Config,
		HomeDir: cfg.SSH.Home, AgentSocket: cfg.SSH.AgentSocket,
		Timeout: cfg.Timeout, Connections: sftpConnections(cfg.Transfers), Logger: log,
		LeftoverAge: cfg.SSH.LeftoverAge,
	}, nil
}

// passphraseTries is how often a passphrase typed at the terminal may be
// wrong for one key, as ssh's NumberOfPasswordPrompts.
const passphraseTries = 3

// unlockSSHKeys asks on the terminal for the passphrases of the encrypted
// key files the server accepts (sftp.Unlock logs in once to learn which),
// for mounts whose secret is not at hand: the daemon cannot ask. It keeps
// them in cfg.SSH.Passphrases, for the daemon's settings pipe.
func unlockSSHKeys(cfg *mountConfig, prompt func(string) (string, error), stderr io.Writer) error {
	if prompt == nil || cfg.Password != "" {
		return nil
	}
	c, err := sftpConfig(cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	asked := map[string]int{}
	c.PassphraseTries = passphraseTries
	c.Passphrase = func(keyFile string) (string, error) {
		if asked[keyFile] > 0 {
			fmt.Fprintf(stderr, "cloudmount: that passphrase does not decrypt %s\n", keyFile)
		}
		asked[keyFile]++
		return prompt(fmt.Sprintf("Enter passphrase for key %s: ", keyFile))
	}
	typed, err := sftp.Unlock(context.Background(), c)
	if err != nil {
		return err
	}
	cfg.SSH.Passphrases = typed
	return nil
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
