package mountutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// PasswordCommandTimeout bounds a password command (it may wait for a
// pinentry dialog).
const PasswordCommandTimeout = 2 * time.Minute

// maxPasswordOutput bounds what is kept of a password command's output.
const maxPasswordOutput = 64 << 10

// SplitCommand splits a command line into words as a shell would, without
// running one and without expanding anything ($, ~, * and ` are plain
// characters): words are separated by blanks; 'single quotes' keep
// everything up to the next single quote; "double quotes" keep everything
// up to the next unescaped double quote, a backslash escaping only " and \
// inside them; outside quotes a backslash keeps the next character.
func SplitCommand(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word (an empty "" is a word)
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
			in = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// RunPasswordCommand runs a password command and returns the first line
// of its standard output. The command line is split by SplitCommand and run
// without a shell, with standard input from /dev/null, the environment env
// without CLOUDMOUNT_PASSWORD, and its standard error going to stderr. Its
// output is never part of an error; errors name the program and how it
// ended.
func RunPasswordCommand(ctx context.Context, line string, env []string, stderr io.Writer) (string, error) {
	argv, err := SplitCommand(line)
	if err != nil {
		return "", fmt.Errorf("password command: %w", err)
	}
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("password command: empty command")
	}
	ctx, cancel := context.WithTimeout(ctx, PasswordCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = DaemonEnv(env)
	out := &capped{max: maxPasswordOutput}
	cmd.Stdout, cmd.Stderr = out, stderr
	// A child that keeps the output open must not hold the mount up.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return "", fmt.Errorf("password command %s did not finish within %v", argv[0], PasswordCommandTimeout)
	case errors.As(err, &exitErr):
		return "", fmt.Errorf("password command %s failed: %s", argv[0], exitErr.ProcessState)
	case err != nil:
		return "", fmt.Errorf("password command %s: %w", argv[0], err)
	}
	first, _, _ := bytes.Cut(out.buf.Bytes(), []byte{'\n'})
	p := strings.TrimSuffix(string(first), "\r")
	clear(out.buf.Bytes())
	if p == "" {
		return "", fmt.Errorf("password command %s printed no password (an empty first line)", argv[0])
	}
	return p, nil
}

// capped keeps the first max bytes written to it and takes the rest
// without keeping it, so that the writer never sees an error.
type capped struct {
	buf bytes.Buffer
	max int
}

// Write keeps what fits.
func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
