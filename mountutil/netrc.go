package mountutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// NetrcEntry is one machine (or the default) of a netrc file.
type NetrcEntry struct {
	// Machine is the host name; "" for the "default" entry.
	Machine string
	// Login and Password are the credentials for it.
	Login, Password string
}

// ParseNetrc reads a netrc file (machine HOST login USER password PW;
// default; account and macdef skipped). Tokens may be double-quoted with
// backslash escapes. Unknown keywords are skipped.
func ParseNetrc(r io.Reader) ([]NetrcEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSecretsSize))
	if err != nil {
		return nil, fmt.Errorf("read netrc: %w", err)
	}
	var (
		out []NetrcEntry
		cur *NetrcEntry
	)
	t := netrcTokens{s: string(data)}
	for {
		tok, ok := t.next()
		if !ok {
			break
		}
		switch tok {
		case "machine":
			host, ok := t.next()
			if !ok {
				return nil, errors.New("netrc: machine without a name")
			}
			out = append(out, NetrcEntry{Machine: host})
			cur = &out[len(out)-1]
		case "default":
			out = append(out, NetrcEntry{})
			cur = &out[len(out)-1]
		case "login", "password", "account":
			v, ok := t.next()
			if !ok {
				return nil, fmt.Errorf("netrc: %s without a value", tok)
			}
			if cur == nil {
				continue
			}
			if tok == "login" {
				cur.Login = v
			} else if tok == "password" {
				cur.Password = v
			}
		case "macdef":
			t.skipMacro()
		}
	}
	return out, nil
}

// netrcTokens splits a netrc file into tokens.
type netrcTokens struct {
	s string
	i int
}

// next returns the next token, unquoting "..." tokens.
func (t *netrcTokens) next() (string, bool) {
	for t.i < len(t.s) && isNetrcSpace(t.s[t.i]) {
		t.i++
	}
	if t.i >= len(t.s) {
		return "", false
	}
	if t.s[t.i] == '"' {
		var b strings.Builder
		for t.i++; t.i < len(t.s) && t.s[t.i] != '"'; t.i++ {
			if t.s[t.i] == '\\' && t.i+1 < len(t.s) {
				t.i++
			}
			b.WriteByte(t.s[t.i])
		}
		t.i++ // closing quote, if any
		return b.String(), true
	}
	start := t.i
	for t.i < len(t.s) && !isNetrcSpace(t.s[t.i]) {
		t.i++
	}
	return t.s[start:t.i], true
}

// skipMacro skips a macdef: its name line and the lines up to a blank one.
func (t *netrcTokens) skipMacro() {
	end := strings.Index(t.s[t.i:], "\n\n")
	if end < 0 {
		t.i = len(t.s)
		return
	}
	t.i += end + 2
}

// isNetrcSpace reports whether c separates netrc tokens.
func isNetrcSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// FindNetrc returns the entry for host (case-insensitive, without port) and
// user: an entry whose login is user or empty; with user "" any entry for
// the host. The default entry is used when no machine matches.
func FindNetrc(entries []NetrcEntry, host, user string) (NetrcEntry, bool) {
	match := func(e NetrcEntry) bool {
		return e.Password != "" && (user == "" || e.Login == "" || e.Login == user)
	}
	for _, e := range entries {
		if e.Machine != "" && strings.EqualFold(e.Machine, host) && match(e) {
			return e, true
		}
	}
	for _, e := range entries {
		if e.Machine == "" && match(e) {
			return e, true
		}
	}
	return NetrcEntry{}, false
}

// ReadNetrcFile reads and parses the netrc file at path. A missing file is
// no error; one readable by group or others is refused (see OpenPrivate).
func ReadNetrcFile(path string) ([]NetrcEntry, error) {
	f, err := OpenPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := ParseNetrc(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return entries, nil
}

// DefaultNetrcFile is $NETRC, else ~/.netrc.
func DefaultNetrcFile() string {
	if p := os.Getenv("NETRC"); p != "" {
		return p
	}
	home, err := Home()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".netrc")
}
