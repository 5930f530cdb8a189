package ncserver

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

var (
	ocPermissions = xml.Name{Space: "http://owncloud.org/ns", Local: "permissions"}
	ocFileID      = xml.Name{Space: "http://owncloud.org/ns", Local: "fileid"}
)

// perms is the oc:permissions of the entry at p (a path of the user's tree).
func (s *Server) perms(p string, isDir bool) string {
	if s.opts.Permissions != nil {
		return s.opts.Permissions(cleanPath(p), isDir)
	}
	if isDir {
		return "RGDNVCK"
	}
	return "RGDNVW"
}

// props answers oc:permissions and oc:fileid (the inode number: it stays
// with the file through a MOVE, as Nextcloud's file id does).
func (s *Server) props(name string, isDir bool) map[xml.Name]string {
	m := map[xml.Name]string{ocPermissions: s.perms(name, isDir)}
	if fi, err := os.Lstat(s.local(name)); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			m[ocFileID] = strconv.FormatUint(st.Ino, 10)
		}
	}
	return m
}

// permitted checks a change against the permissions of what it touches:
// the target (W to write a file, D to delete, N or V to move it) and the
// directory a new entry goes into (C for a file, K for a folder).
func (s *Server) permitted(r *http.Request, prefix string) bool {
	name := cleanPath(strings.TrimPrefix(r.URL.Path, prefix))
	fi, err := os.Lstat(s.local(name))
	exists := err == nil
	may := func(p string, isDir bool, c byte) bool {
		return strings.IndexByte(s.perms(p, isDir), c) >= 0
	}
	create := func(p string, dir bool) bool {
		c := byte('C')
		if dir {
			c = 'K'
		}
		return may(path.Dir(p), true, c)
	}
	switch r.Method {
	case http.MethodPut:
		if exists {
			return may(name, false, 'W')
		}
		return create(name, false)
	case "PROPPATCH":
		return !exists || fi.IsDir() || may(name, false, 'W')
	case "MKCOL":
		return create(name, true)
	case http.MethodDelete:
		return !exists || may(name, fi.IsDir(), 'D')
	case "MOVE", "COPY":
		dest := s.destinationPath(r, prefix)
		if dest == "" || !exists {
			return true
		}
		if r.Method == "MOVE" {
			same := path.Dir(dest) == path.Dir(name)
			if (same && !may(name, fi.IsDir(), 'N')) || (!same && !may(name, fi.IsDir(), 'V')) {
				return false
			}
			if same {
				return true
			}
		}
		if dfi, err := os.Lstat(s.local(dest)); err == nil && !dfi.IsDir() {
			return may(dest, false, 'W')
		}
		return create(dest, fi.IsDir())
	}
	return true
}

// destinationPath is the Destination header of a MOVE or COPY as a path of
// the user's tree, or "" when it is not below prefix.
func (s *Server) destinationPath(r *http.Request, prefix string) string {
	u, err := url.Parse(r.Header.Get("Destination"))
	if err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(u.Path, prefix)
	if !ok {
		return ""
	}
	return cleanPath(rest)
}
