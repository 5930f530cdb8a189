package sftp

import (
	"errors"
	"os"
	"path"
	"strings"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Names of cloudmount's own files on the server, never shown: uploads in
// progress (renamed over their target when complete) and the capability
// probe.
const (
	UploadPrefix = ".cloudmount-upload-"
	ProbePrefix  = ".cloudmount-probe-"
)

// hidden reports whether a name is one of cloudmount's own files.
func hidden(name string) bool {
	return strings.HasPrefix(name, UploadPrefix) || strings.HasPrefix(name, ProbePrefix)
}

// reserved refuses to create p (op) under one of cloudmount's own names:
// it would not be shown, and could be taken for a leftover and removed.
func reserved(op, p string) error {
	if p != "" && hidden(path.Base(p)) {
		return &OpError{Op: op, Path: p, Kind: backends.ErrPermission, Err: errors.New("the name is reserved for cloudmount's temporary files")}
	}
	return nil
}

// fileKind is what an SFTP attribute block describes.
type fileKind int

const (
	kindFile fileKind = iota
	kindDir
	kindSymlink
	kindSpecial // fifo, socket, device: not shown
)

// kindOf reads the file type of fi.
func kindOf(fi os.FileInfo) fileKind {
	m := fi.Mode()
	switch {
	case m.IsDir():
		return kindDir
	case m&os.ModeSymlink != 0:
		return kindSymlink
	case m.IsRegular():
		return kindFile
	}
	return kindSpecial
}

// entryOf builds the entry of name from its SFTP attributes. Symlinks get
// their LinkTarget from the caller.
func entryOf(name string, fi os.FileInfo) backends.Entry {
	e := backends.Entry{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
	mtime := e.ModTime
	e.Meta.MTime = &mtime
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		if st.Mode != 0 { // 0: the server sent no permissions
			mode := os.FileMode(st.Mode & 0o7777)
			e.Meta.Mode = &mode
		}
	} else {
		mode := fi.Mode().Perm()
		e.Meta.Mode = &mode
	}
	switch kindOf(fi) {
	case kindDir:
		e.IsDir = true
		e.Size = 0
	case kindSymlink:
		e.Meta.Type = "symlink"
		e.Version = backends.StatVersion(e.Size, e.ModTime)
	default:
		e.Version = backends.StatVersion(e.Size, e.ModTime)
	}
	return e
}
