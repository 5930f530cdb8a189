package davserver

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/webdav"
	"golang.org/x/sys/unix"
)

// xattrName holds all dead properties of a file as one JSON document, so
// that a PROPPATCH is one atomic setxattr.
const xattrName = "user.davserver.props"

// Quota properties of RFC 4331, answered for the root from statfs.
var (
	quotaAvailable = xml.Name{Space: "DAV:", Local: "quota-available-bytes"}
	quotaUsed      = xml.Name{Space: "DAV:", Local: "quota-used-bytes"}
)

// storedProp is the on-disk form of one dead property.
type storedProp struct {
	Space string `json:"ns"`
	Local string `json:"name"`
	Lang  string `json:"lang,omitempty"`
	XML   string `json:"xml"`
}

// DeadProps returns the dead properties of the file; for the root also the
// quota figures (x/net/webdav looks up unknown names among the dead ones).
func (f *file) DeadProps() (map[xml.Name]webdav.Property, error) {
	m, err := f.loadProps()
	if err != nil {
		return nil, err
	}
	if f.fs.props != nil {
		isDir := false
		if fi, err := f.Stat(); err == nil {
			isDir = fi.IsDir()
		}
		for k, v := range f.fs.props(f.name, isDir) {
			var b strings.Builder
			_ = xml.EscapeText(&b, []byte(v))
			m[k] = webdav.Property{XMLName: k, InnerXML: []byte(b.String())}
		}
	}
	if f.isRoot {
		var st unix.Statfs_t
		if err := f.control(func(fd int) error { return unix.Fstatfs(fd, &st) }); err == nil {
			bs := uint64(st.Bsize)
			free := st.Bavail * bs
			used := (st.Blocks - st.Bfree) * bs
			m[quotaAvailable] = webdav.Property{XMLName: quotaAvailable, InnerXML: []byte(strconv.FormatUint(free, 10))}
			m[quotaUsed] = webdav.Property{XMLName: quotaUsed, InnerXML: []byte(strconv.FormatUint(used, 10))}
		}
	}
	return m, nil
}

// Patch applies a PROPPATCH atomically: all changes are written with one
// setxattr, or none is.
func (f *file) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	var names []xml.Name
	protected := false
	for _, p := range patches {
		for _, prop := range p.Props {
			names = append(names, prop.XMLName)
			if prop.XMLName == quotaAvailable || prop.XMLName == quotaUsed {
				protected = true
			}
		}
	}
	if protected {
		return failAll(names, http.StatusForbidden, "quota properties are computed by the server"), nil
	}
	f.fs.patchMu.Lock()
	defer f.fs.patchMu.Unlock()
	m, err := f.loadStored()
	if err != nil {
		return failAll(names, statusFor(err), err.Error()), nil
	}
	kept := 0
	for _, p := range patches {
		for _, prop := range p.Props {
			if p.Remove {
				delete(m, prop.XMLName)
				continue
			}
			if f.fs.firstPropOnly && kept > 0 {
				continue
			}
			kept++
			m[prop.XMLName] = storedProp{Space: prop.XMLName.Space, Local: prop.XMLName.Local, Lang: prop.Lang, XML: string(prop.InnerXML)}
		}
	}
	if err := f.saveStored(m); err != nil {
		return failAll(names, statusFor(err), err.Error()), nil
	}
	ok := webdav.Propstat{Status: http.StatusOK}
	for _, n := range names {
		ok.Props = append(ok.Props, webdav.Property{XMLName: n})
	}
	return []webdav.Propstat{ok}, nil
}

// failAll answers a refused PROPPATCH: every property gets status.
func failAll(names []xml.Name, status int, why string) []webdav.Propstat {
	ps := webdav.Propstat{Status: status, ResponseDescription: why}
	for _, n := range names {
		ps.Props = append(ps.Props, webdav.Property{XMLName: n})
	}
	return []webdav.Propstat{ps}
}

// statusFor maps an xattr error to a propstat status.
func statusFor(err error) int {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.E2BIG), errors.Is(err, unix.EDQUOT):
		return http.StatusInsufficientStorage
	default: // ENOTSUP (no user xattrs here), EPERM, EACCES, …
		return http.StatusForbidden
	}
}

// loadProps reads the dead properties. A filesystem without xattrs, or an
// attribute that cannot be read, gives none: a PROPFIND must still list the
// file.
func (f *file) loadProps() (map[xml.Name]webdav.Property, error) {
	stored, _ := f.loadStored()
	m := make(map[xml.Name]webdav.Property, len(stored)+2)
	for n, p := range stored {
		m[n] = webdav.Property{XMLName: n, Lang: p.Lang, InnerXML: []byte(p.XML)}
	}
	return m, nil
}

// loadStored reads and decodes the props xattr. A missing or unreadable
// document counts as no properties (a corrupt one is replaced on the next
// PROPPATCH rather than making the file unusable).
func (f *file) loadStored() (map[xml.Name]storedProp, error) {
	m := make(map[xml.Name]storedProp)
	var data []byte
	err := f.control(func(fd int) error {
		for {
			n, err := unix.Fgetxattr(fd, xattrName, nil)
			if err != nil {
				return err
			}
			buf := make([]byte, n)
			n, err = unix.Fgetxattr(fd, xattrName, buf)
			if errors.Is(err, unix.ERANGE) {
				continue // grew in between
			}
			if err != nil {
				return err
			}
			data = buf[:n]
			return nil
		}
	})
	if errors.Is(err, unix.ENODATA) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	var list []storedProp
	if json.Unmarshal(data, &list) != nil {
		return m, nil
	}
	for _, p := range list {
		m[xml.Name{Space: p.Space, Local: p.Local}] = p
	}
	return m, nil
}

// saveStored writes the props xattr, or removes it when m is empty.
func (f *file) saveStored(m map[xml.Name]storedProp) error {
	return f.control(func(fd int) error {
		if len(m) == 0 {
			err := unix.Fremovexattr(fd, xattrName)
			if errors.Is(err, unix.ENODATA) {
				return nil
			}
			return err
		}
		list := make([]storedProp, 0, len(m))
		for _, p := range m {
			list = append(list, p)
		}
		data, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return unix.Fsetxattr(fd, xattrName, data, 0)
	})
}

// control runs fn with the file descriptor, without switching the file to
// blocking mode as Fd would.
func (f *file) control(fn func(fd int) error) error {
	rc, err := f.File.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
