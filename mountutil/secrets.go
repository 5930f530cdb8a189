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
	"syscall"
)

// Secret is one line of a secrets file: the password of User at URL, or
// at whatever is mounted on Mountpoint.
type Secret struct {
	// URL is the source URL as written in the file; "" for a line keyed
	// by mountpoint.
	URL string
	// Mountpoint is the absolute mountpoint the line is for, unescaped
	// (fstab's \040 for a space); "" for a line keyed by URL.
	Mountpoint string
	// User is the remote user name.
	User string
	// Password is the rest of the line after the user name.
	Password string
	// Line is the line number, for error messages.
	Line int
}

// maxSecretsSize bounds what ReadSecretsFile and ReadNetrcFile read.
const maxSecretsSize = 1 << 20

// ParseSecrets reads a secrets file: one "URL user password" or
// "MOUNTPOINT user password" per line (MOUNTPOINT absolute, with fstab's
// octal escapes such as \040 for a space), blank lines and lines starting
// with '#' ignored. The password is the rest of the line after the user
// name, surrounding blanks trimmed, so it may hold spaces and '#'. name is
// used in errors, which never quote a line (it may hold a password).
func ParseSecrets(r io.Reader, name string) ([]Secret, error) {
	var out []Secret
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxSecretsSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest, _ := cutField(line)
		user, pass, _ := cutField(rest)
		if key == "" || user == "" || pass == "" {
			return nil, fmt.Errorf("%s line %d: want \"URL user password\" or \"MOUNTPOINT user password\"", name, n)
		}
		sec := Secret{User: user, Password: pass, Line: n}
		if strings.HasPrefix(key, "/") {
			sec.Mountpoint = filepath.Clean(UnescapeMountinfo(key))
		} else {
			if _, err := NormalizeURL(key); err != nil {
				return nil, fmt.Errorf("%s line %d: %w", name, n, err)
			}
			sec.URL = key
		}
		out = append(out, sec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// escapeMountpoint writes a path the way a secrets file (and fstab) holds
// it: blanks, newlines and backslashes as octal escapes.
func escapeMountpoint(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case ' ', '\t', '\n', '\r', '\\', '\v', '\f':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// cutField splits s at its first run of blanks.
func cutField(s string) (field, rest string, ok bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.TrimSpace(s[i:]), true
}

// FindSecret returns the first secret, in file order, for source or for
// mountpoint whose user is user; with user "" the first secret for either
// matches, whatever its user. URLs are compared after NormalizeURL,
// mountpoints as cleaned absolute paths; mountpoint "" matches no line.
func FindSecret(secrets []Secret, source, mountpoint, user string) (Secret, bool) {
	want, err := NormalizeURL(source)
	if err != nil {
		want = ""
	}
	if mountpoint != "" {
		mountpoint = filepath.Clean(mountpoint)
	}
	for _, s := range secrets {
		if user != "" && s.User != user {
			continue
		}
		if s.Mountpoint != "" {
			if s.Mountpoint == mountpoint {
				return s, true
			}
			continue
		}
		if got, err := NormalizeURL(s.URL); err == nil && want != "" && got == want {
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

// SystemSecretsFile is the system-wide secrets file, for mounts made by
// root (from fstab at boot, systemd mount units) and for the members of a
// group it is readable by.
const SystemSecretsFile = "/etc/cloudmount/secrets"

// ReadSystemSecretsFile reads and parses a system-wide secrets file. It
// must belong to root and be neither writable by its group nor accessible
// by others (0600, or 0640 for a group of users who may read it); anything
// else is refused. A missing file, or one this user may not read, is no
// error (nil, nil): it is not for them.
func ReadSystemSecretsFile(path string) ([]Secret, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch perm := fi.Mode().Perm(); {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case !ok || st.Uid != 0:
		return nil, fmt.Errorf("%s must belong to root: chown root %s", path, path)
	case perm&0o007 != 0:
		return nil, fmt.Errorf("%s is accessible by others (mode %04o): chmod o-rwx %s", path, perm, path)
	case perm&0o020 != 0:
		return nil, fmt.Errorf("%s is writable by its group (mode %04o): chmod g-w %s", path, perm, path)
	}
	return ParseSecrets(io.LimitReader(f, maxSecretsSize), path)
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
