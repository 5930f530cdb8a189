package sftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/cloudmount/cloudmount/backends"
)

// emptySHA256 is sha256sum's answer for empty input.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// hashRate is the slowest rate at which a server is expected to hash a
// file; the deadline of SHA256 grows with the file's size at this rate.
const hashRate = 20 << 20 // bytes per second

// probeTimeout bounds the sha256sum probe, so that a server that ignores
// the command does not hold up the mount for the whole call timeout.
const probeTimeout = 10 * time.Second

// maxCommandOutput bounds what is kept of a command's output.
const maxCommandOutput = 4096

// probeHash runs sha256sum on empty input over an exec channel; if the
// answer is right, SHA256 works. Servers that allow only SFTP
// (internal-sftp, ForceCommand) refuse the command or answer something
// else.
func (b *Backend) probeHash(ctx context.Context) {
	out, err := b.command(ctx, "sha256sum", min(b.timeout, probeTimeout))
	switch {
	case err != nil:
		b.hashNote = fmt.Sprintf("hashes on the server: no (running sha256sum failed: %v)", err)
	case parseSHA256(out) != emptySHA256:
		b.hashNote = fmt.Sprintf("hashes on the server: no (sha256sum answered %q)", backends.Escape(truncate(string(out), 80)))
	default:
		b.canHash = true
		b.hashNote = "hashes on the server: yes (sha256sum over exec)"
	}
}

// SHA256 returns the SHA-256 of the file at p, computed by the server
// (sha256sum), or ErrUnsupported where the probe found no sha256sum (see
// CanHash). The deadline grows with the file's size.
func (b *Backend) SHA256(ctx context.Context, p string) (string, error) {
	p = cleanPath(p)
	if !b.canHash {
		return "", backends.Describe(backends.ErrUnsupported, "sha256 %s: %s cannot compute hashes (%s)", display(p), b.hostPort, b.hashNote)
	}
	remote := b.remote(p)
	if strings.ContainsAny(remote, "\n\r") {
		return "", backends.Describe(backends.ErrUnsupported, "sha256 %s: a name with a line break is not passed to the remote shell", display(p))
	}
	e, err := b.Stat(ctx, p)
	if err != nil {
		return "", err
	}
	switch {
	case e.IsDir:
		return "", &OpError{Op: "sha256", Path: p, Kind: backends.ErrIsDir}
	case e.Meta.Type == "symlink":
		return "", &OpError{Op: "sha256", Path: p, Kind: backends.ErrUnsupported, Err: errors.New("a symbolic link has no content to hash")}
	}
	limit := b.timeout + time.Duration(e.Size/hashRate)*time.Second
	out, err := b.command(ctx, "sha256sum < "+shellQuote(remote), limit)
	if err != nil {
		return "", fmt.Errorf("sha256 %s: %w", display(p), err)
	}
	sum := parseSHA256(out)
	if sum == "" {
		return "", backends.Describe(backends.ErrProtocol, "sha256 %s: sha256sum answered %q", display(p), backends.Escape(truncate(string(out), 80)))
	}
	return sum, nil
}

// command runs cmd on the server with empty input over an exec channel of
// a pooled connection and returns its standard output. When it overruns
// limit the channel is closed (not the connection, which may be fine: a
// big file hashes slowly).
func (b *Backend) command(ctx context.Context, cmd string, limit time.Duration) ([]byte, error) {
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return nil, err
	}
	defer s.end(nil)
	var (
		stdout, stderr limitedBuffer
		sess           *ssh.Session
		opened         = make(chan struct{})
	)
	err = s.run(callSpec{
		limit:    limit,
		keepConn: true,
		fn: func(*sftp.Client) error {
			var err error
			sess, err = s.c.ssh.NewSession()
			close(opened)
			if err != nil {
				return err
			}
			defer sess.Close()
			sess.Stdin = strings.NewReader("")
			sess.Stdout = &stdout
			sess.Stderr = &stderr
			return sess.Run(cmd)
		},
		abort: func() {
			select {
			case <-opened:
				if sess != nil {
					sess.Close()
				}
			default:
				// The channel did not even open: the connection is stuck.
				s.c.kill(fmt.Sprintf("no answer within %s", limit))
			}
		},
	})
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), nil
	case errors.As(err, &exit):
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no message"
		}
		return nil, fmt.Errorf("the command exited with status %d (%s)", exit.ExitStatus(), backends.Escape(truncate(msg, 200)))
	case errors.Is(err, backends.ErrUnavailable):
		return nil, err
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("the command ended without an exit status")
	}
	return nil, fmt.Errorf("the server refused to run a command (%v)", err)
}

// parseSHA256 reads sha256sum's output for standard input ("<hex>  -"),
// returning "" if it is not that.
func parseSHA256(out []byte) string {
	line, _, _ := strings.Cut(string(out), "\n")
	sum, rest, ok := strings.Cut(line, " ")
	if !ok || len(sum) != 64 || strings.TrimLeft(rest, " *") != "-" {
		return ""
	}
	for _, c := range sum {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return sum
}

// shellQuote quotes s for a POSIX shell: single quotes, with each single
// quote written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// limitedBuffer keeps the first maxCommandOutput bytes written to it and
// drops the rest.
type limitedBuffer struct {
	bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandOutput - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

var _ io.Writer = (*limitedBuffer)(nil)
