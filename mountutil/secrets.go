package mountutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Secret is one line of a secrets file: the password of User at URL.
type Secret struct {
	// URL is the source URL as written in the file.
	URL string
	// User is the remote user name.
	User string
	// Password is the rest of the line after the user name.
	Password string
	// Line is the line number, for error messages.
	Line int
}

// maxSecretsSize bounds what ReadSecretsFile and ReadNetrcFile read.
const maxSecretsSize = 1 << 20

// ParseSecrets reads a secrets file: one "URL user password" per line,
// blank lines and lines starting with '#' ignored. The password is the rest
// of the line after the user name, surrounding blanks trimmed, so it may hold
// spaces and '#'. name is used in errors, which never quote a line (it may
// hold a password).
func ParseSecrets(r io.Reader, name string) ([]Secret, error) {
	var out []Secret
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxSecretsSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, rest, _ := cutField(line)
		user, pass, _ := cutField(rest)
		if u == "" || user == "" || pass == "" {
			return nil, fmt.Errorf("%s line %d: want \"URL user password\"", name, n)
		}
		if _, err := NormalizeURL(u); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		out = append(out, Secret{URL: u, User: user, Password: pass, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// cutField splits s at its first run of blanks.
func cutField(s string) (field, rest string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimSpace(s[i:]), true
}

// FindSecret returns the first secret whose URL matches source (compared
// after NormalizeURL) and whose user is user; with user "" the first secret
// for the URL matches, whatever its user.
func FindSecret(secrets []Secret, source, user string) (Secret, bool) {
	want, err := NormalizeURL(source)
	if err != nil {
		return Secret{}, false
	}
	for _, s := range secrets {
		got, err := NormalizeURL(s.URL)
		if err == nil && got == want && (user == "" || s.User == user) {
			return s, true
		}
	}
	return Secret{}, false
}

// ReadSecretsFile reads and parses the secrets file at path. A missing file
// is no error (nil, nil); a file readable or writable by group or others is
// refused (see OpenPrivate).
func ReadSecretsFile(path string) ([]Secret, error) {
	f, err := OpenPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSecrets(io.LimitReader(f, maxSecretsSize), path)
}

// OpenPrivate opens a file that holds secrets, refusing it unless it is a
// regular file that only its owner can read and write (mode 0600 or
// stricter). The check is made on the open file, so the file cannot be
// swapped in between. A missing file gives an error matching
// fs.ErrNotExist.
func OpenPrivate(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("%s is accessible by group or others (mode %04o): chmod 600 %s", path, perm, path)
	}
	return f, nil
}

// DefaultSecretsFile is ~/.config/cloudmount/secrets (following
// $XDG_CONFIG_HOME; see ConfigHome).
func DefaultSecretsFile() string {
	dir, err := ConfigHome()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "cloudmount", "secrets")
}

// Tildify writes path with the home directory as "~", for messages.
func Tildify(path string) string {
	home, err := Home()
	if err != nil || home == "" || home == "/" {
		return path
	}
	if rest, ok := strings.CutPrefix(path, home+"/"); ok {
		return "~/" + rest
	}
	return path
}
