package backends

import (
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxNameBytes is the longest name a local filesystem holds (NAME_MAX).
const MaxNameBytes = 255

// MetaFileName is the name of the per-directory metadata file (package
// sidecar) that keeps mtime, mode, owner, hash and type of a directory's
// children on servers that cannot keep them with the files. A mount that
// uses it never shows that name and refuses to create it.
const MetaFileName = ".cloudmount-meta"

// NameProblem says why a name from a server cannot be a directory entry on
// a local filesystem ("" when it can): empty, "." or "..", a NUL byte, a
// slash, or longer than MaxNameBytes.
func NameProblem(name string) string {
	switch {
	case name == "":
		return "an empty name"
	case name == "." || name == "..":
		return "the name " + name
	case strings.IndexByte(name, 0) >= 0:
		return "a NUL byte in the name"
	case strings.IndexByte(name, '/') >= 0:
		return "a slash in the name"
	case len(name) > MaxNameBytes:
		return "a name of " + strconv.Itoa(len(name)) + " bytes (the most is " + strconv.Itoa(MaxNameBytes) + ")"
	}
	return ""
}

// Escape renders a name or path that came from a server for a message or a
// log line: as it is when every character is printable, else in the form of
// a Go string literal without its quotes (control characters as \x1b, \n,
// invalid UTF-8 as \xff, backslashes doubled), so that a name can neither
// forge log lines nor drive a terminal.
func Escape(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r == '\\' || !strconv.IsPrint(r) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// NameAttr is a log attribute carrying a name or path from a server, escaped
// with Escape.
func NameAttr(key, name string) slog.Attr {
	return slog.String(key, Escape(name))
}

// InTree reports whether the path p is base or below it ("" is the root).
func InTree(p, base string) bool {
	return base == "" || p == base || (len(p) > len(base) && p[len(base)] == '/' && p[:len(base)] == base)
}
