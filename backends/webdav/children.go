package webdav

import (
	"net"
	"net/url"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// maxSkipWarnings is how many skipped entries of one listing are logged one
// by one; the rest are counted in one line.
const maxSkipWarnings = 5

// hrefProblem says why an href of a listing can name no child of the
// listed collection, whatever the collection ("" when it can): it points
// to another server, or its last segment holds an encoded slash.
func (b *Backend) hrefProblem(href string) string {
	if !b.sameOrigin(href) {
		return "its href points to another server"
	}
	if strings.Contains(strings.ToLower(lastSegment(hrefRawPath(href))), "%2f") {
		return "its name holds an encoded slash (%2F)"
	}
	return ""
}

// childOf decides whether the decoded URL path p names a direct child of
// the collection whose path is parent (no trailing slash, "/" for the
// server's root), and returns the child's name; otherwise it says why not,
// for the log. A server must not make entries appear that are not in the
// directory (an href to "..", to a deeper path, outside), nor hand the
// kernel a name no local filesystem can hold.
func childOf(p, parent string) (name, reason string) {
	prefix := parent + "/"
	if parent == "/" {
		prefix = "/"
	}
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok {
		return "", "it is not inside the listed directory"
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.Contains(rest, "/") {
		return "", "it is not a direct child of the listed directory"
	}
	if problem := backends.NameProblem(rest); problem != "" {
		return "", "a local filesystem cannot hold " + problem
	}
	return rest, ""
}

// sameOrigin reports whether href, relative or absolute, points to this
// backend's server (same scheme, host and port).
func (b *Backend) sameOrigin(href string) bool {
	scheme, host, ok := hrefOrigin(href)
	if !ok {
		return true // an absolute path
	}
	if !strings.EqualFold(scheme, b.scheme) {
		return false
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if strings.EqualFold(scheme, "https") {
			port = "443"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	return strings.EqualFold(host, b.hostPort)
}

// hrefOrigin returns the scheme and host of an absolute href; ok is false
// for an href that is a path.
func hrefOrigin(href string) (scheme, host string, ok bool) {
	if u, err := url.Parse(href); err == nil {
		if u.Scheme == "" && u.Host == "" {
			return "", "", false
		}
		return u.Scheme, u.Host, true
	}
	i := strings.Index(href, "://")
	if i < 0 {
		return "", "", false
	}
	rest := href[i+3:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return href[:i], rest, true
}

// hrefRawPath is the path of an href as the server wrote it, still
// percent-encoded.
func hrefRawPath(href string) string {
	if i := strings.Index(href, "://"); i >= 0 {
		rest := href[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "/"
		}
		href = rest[j:]
	}
	if i := strings.IndexAny(href, "?#"); i >= 0 {
		href = href[:i]
	}
	return href
}

// skipLog logs the entries a listing leaves out: the first few one by one,
// the others as a count.
type skipLog struct {
	b     *Backend
	dir   string
	count int
}

func (s *skipLog) skip(href, reason string) {
	s.count++
	if s.count > maxSkipWarnings {
		return
	}
	s.b.log.Warn("webdav: listing entry skipped", "dir", display(s.dir), backends.NameAttr("href", href),
		"reason", reason, "server", s.b.hostPort)
}

func (s *skipLog) done() {
	if s.count > maxSkipWarnings {
		s.b.log.Warn("webdav: listing entries skipped", "dir", display(s.dir),
			"more", s.count-maxSkipWarnings, "server", s.b.hostPort)
	}
}
