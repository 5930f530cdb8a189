package davserver

import (
	"context"
	"encoding/xml"
	"errors"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/webdav"
)

// fileSystem is webdav.Dir whose files hold dead properties in xattrs and
// whose file infos carry this server's ETag.
type fileSystem struct {
	webdav.Dir
	root string // absolute path of the served directory
	// firstPropOnly: a PROPPATCH keeps only its first property (Faults).
	firstPropOnly bool
	// hideDotNames: listings leave out names starting with a dot (Faults).
	hideDotNames bool
	// props: Options.Props.
	props func(name string, isDir bool) map[xml.Name]string

	patchMu sync.Mutex // serialises read-modify-write of the props xattr
}

// OpenFile opens name. x/net/webdav opens a file read-write to PROPPATCH
// it, which a directory (or a read-only file) refuses: such an open is
// retried read-only, enough to set an extended attribute.
func (fsys *fileSystem) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	f, err := fsys.Dir.OpenFile(ctx, name, flag, perm)
	if err != nil && flag&(os.O_CREATE|os.O_TRUNC|os.O_APPEND) == 0 && flag&(os.O_RDWR|os.O_WRONLY) != 0 &&
		(errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EACCES)) {
		f, err = fsys.Dir.OpenFile(ctx, name, os.O_RDONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	osf, ok := f.(*os.File)
	if !ok {
		return f, nil
	}
	clean := path.Clean("/" + name)
	return &file{File: osf, fs: fsys, name: clean, isRoot: clean == "/"}, nil
}

// Stat returns the file info of name, with this server's ETag.
func (fsys *fileSystem) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	fi, err := fsys.Dir.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	return fileInfo{fi}, nil
}

// fileInfo adds webdav.ETager to an os.FileInfo.
type fileInfo struct{ os.FileInfo }

// ETag returns the ETag of the file (see etagOf).
func (fi fileInfo) ETag(context.Context) (string, error) { return etagOf(fi.FileInfo), nil }

// file is an open file that implements webdav.DeadPropsHolder.
type file struct {
	*os.File
	fs     *fileSystem
	name   string // slash path inside the tree
	isRoot bool
}

var _ webdav.DeadPropsHolder = (*file)(nil)

// Readdir lists the directory, without names starting with a dot when
// the server hides them (Faults.HideDotNames).
func (f *file) Readdir(count int) ([]os.FileInfo, error) {
	fis, err := f.File.Readdir(count)
	if !f.fs.hideDotNames {
		return fis, err
	}
	out := fis[:0]
	for _, fi := range fis {
		if !strings.HasPrefix(fi.Name(), ".") {
			out = append(out, fi)
		}
	}
	return out, err
}

// Stat returns the file info with this server's ETag.
func (f *file) Stat() (os.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return fileInfo{fi}, nil
}
