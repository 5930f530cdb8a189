package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// MaxListingEntries bounds one directory listing; a larger one is an error
// (pkg/sftp holds the whole listing in memory before it can be counted).
const MaxListingEntries = 1_000_000

// Stat returns the entry at p without following a symbolic link.
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	p = cleanPath(p)
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("stat %s: %w", display(p), err)
	}
	defer s.end(nil)
	return b.stat(s, p)
}

// stat is Stat on a session.
func (b *Backend) stat(s *session, p string) (backends.Entry, error) {
	if p != "" && hidden(path.Base(p)) {
		return backends.Entry{}, &OpError{Op: "stat", Path: p, Kind: backends.ErrNotFound}
	}
	var fi os.FileInfo
	err := s.do(func(c *sftp.Client) error {
		var err error
		if p == "" {
			fi, err = c.Stat(b.root) // the root may be a link to a directory
		} else {
			fi, err = c.Lstat(b.remote(p))
		}
		return err
	})
	if err != nil {
		oe := opError("stat", p, err)
		if isFailure(oe) {
			// OpenSSH says "no such file" for ENOTDIR; other servers
			// say only "failure".
			if perr := b.parentProblem(s, "stat", p); perr != nil {
				return backends.Entry{}, perr
			}
		}
		return backends.Entry{}, oe
	}
	name := path.Base(p)
	if p == "" {
		name = ""
	}
	switch kindOf(fi) {
	case kindSpecial:
		return backends.Entry{}, &OpError{Op: "stat", Path: p, Kind: backends.ErrNotFound,
			Err: fmt.Errorf("a special file (%s) on the server, not shown", fi.Mode().Type())}
	case kindSymlink:
		e := entryOf(name, fi)
		if err := s.do(func(c *sftp.Client) error {
			var err error
			e.LinkTarget, err = c.ReadLink(b.remote(p))
			return err
		}); err != nil {
			return backends.Entry{}, opError("readlink", p, err)
		}
		e.Size = int64(len(e.LinkTarget))
		e.Version = backends.StatVersion(e.Size, e.ModTime)
		return e, nil
	}
	return entryOf(name, fi), nil
}

// parentProblem explains a failure on p by its parent: missing
// (ErrNotFound) or not a directory (ErrNotDir); nil if the parent is a
// directory.
func (b *Backend) parentProblem(s *session, op, p string) error {
	parent := path.Dir("/" + p)[1:]
	if p == "" || parent == p {
		return nil
	}
	e, err := b.stat(s, parent)
	switch {
	case errors.Is(err, backends.ErrNotFound), errors.Is(err, backends.ErrNotDir):
		return &OpError{Op: op, Path: p, Kind: backends.ErrNotFound, Err: fmt.Errorf("%s does not exist", display(parent))}
	case err == nil && !e.IsDir:
		return &OpError{Op: op, Path: p, Kind: backends.ErrNotDir, Err: fmt.Errorf("%s is not a directory", display(parent))}
	}
	return nil
}

// exists tells whether something is at p (an error other than "not found"
// is returned as it is).
func (b *Backend) exists(s *session, p string) (backends.Entry, bool, error) {
	e, err := b.stat(s, p)
	switch {
	case err == nil:
		return e, true, nil
	case errors.Is(err, backends.ErrNotFound):
		return backends.Entry{}, false, nil
	}
	return backends.Entry{}, false, err
}

// List returns the children of the directory at p. Names a local
// filesystem cannot hold are left out with a warning; special files
// (fifos, sockets, devices) with a debug line; symbolic links are listed
// as links, never followed.
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	p = cleanPath(p)
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", display(p), err)
	}
	defer s.end(nil)
	var fis []os.FileInfo
	err = s.transfer(func(c *sftp.Client) error {
		var err error
		fis, err = c.ReadDir(b.remote(p))
		return err
	}, nil)
	if err != nil {
		err = opError("list", p, err)
		if errors.Is(err, backends.ErrNotFound) || isFailure(err) {
			// OpenSSH answers "no such file" for a file (ENOTDIR).
			if e, ok, serr := b.exists(s, p); serr == nil && ok && !e.IsDir {
				return nil, &OpError{Op: "list", Path: p, Kind: backends.ErrNotDir}
			}
		}
		return nil, err
	}
	if len(fis) > MaxListingEntries {
		return nil, backends.Describe(backends.ErrProtocol, "list %s: the directory holds %d entries, more than the limit of %d",
			display(p), len(fis), MaxListingEntries)
	}
	entries := make([]backends.Entry, 0, len(fis))
	var (
		links     []int
		leftovers []string
		now       = time.Now()
	)
	for _, fi := range fis {
		name := fi.Name()
		if name == "." || name == ".." {
			continue
		}
		if problem := backends.NameProblem(name); problem != "" {
			b.log.Warn("sftp: skipping an entry whose name cannot be shown", "server", b.hostPort,
				backends.NameAttr("dir", p), backends.NameAttr("name", name), "problem", problem)
			continue
		}
		if hidden(name) {
			if isLeftover(name, fi.ModTime(), now, b.leftoverAge) {
				leftovers = append(leftovers, name)
			}
			continue
		}
		k := kindOf(fi)
		if k == kindSpecial {
			b.log.Debug("sftp: not showing a special file", "server", b.hostPort,
				backends.NameAttr("path", path.Join(p, name)), "type", fi.Mode().Type().String())
			continue
		}
		if k == kindSymlink {
			links = append(links, len(entries))
		}
		entries = append(entries, entryOf(name, fi))
	}
	if len(links) > 0 {
		if err := b.readLinks(s, p, entries, links); err != nil {
			return nil, err
		}
	}
	if len(leftovers) > 0 {
		b.sweepLeftovers(p, leftovers)
	}
	return entries, nil
}

// readLinks fills the LinkTarget of the links among entries, several
// requests at a time.
func (b *Backend) readLinks(s *session, dir string, entries []backends.Entry, links []int) error {
	const parallel = 16
	return s.transfer(func(c *sftp.Client) error {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
			next     = make(chan int)
		)
		for range min(parallel, len(links)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					e := &entries[i]
					target, err := c.ReadLink(b.remote(path.Join(dir, e.Name)))
					if err != nil {
						if errors.Is(classify(err), backends.ErrNotFound) {
							continue // removed since the listing: keep it as it was
						}
						mu.Lock()
						if firstErr == nil {
							firstErr = opError("readlink", path.Join(dir, e.Name), err)
						}
						mu.Unlock()
						continue
					}
					e.LinkTarget = target
					e.Size = int64(len(target))
					e.Version = backends.StatVersion(e.Size, e.ModTime)
				}
			}()
		}
		for _, i := range links {
			next <- i
		}
		close(next)
		wg.Wait()
		return firstErr
	}, nil)
}

// Mkdir creates one directory.
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	p = cleanPath(p)
	if p == "" {
		return &OpError{Op: "mkdir", Path: p, Kind: backends.ErrExist}
	}
	if err := reserved("mkdir", p); err != nil {
		return err
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", display(p), err)
	}
	defer s.end(nil)
	err = s.do(func(c *sftp.Client) error { return c.Mkdir(b.remote(p)) })
	if err == nil {
		return nil
	}
	err = opError("mkdir", p, err)
	if isFailure(err) || errors.Is(err, backends.ErrPermission) {
		if _, ok, _ := b.exists(s, p); ok {
			return &OpError{Op: "mkdir", Path: p, Kind: backends.ErrExist, Err: err}
		}
		if perr := b.parentProblem(s, "mkdir", p); perr != nil {
			return perr
		}
		if isFailure(err) && b.full(s) {
			return &OpError{Op: "mkdir", Path: p, Kind: backends.ErrNoSpace, Err: err}
		}
	}
	return err
}

// Remove deletes a file, a symbolic link or an empty directory. The root
// is never removed.
func (b *Backend) Remove(ctx context.Context, p string) error {
	p = cleanPath(p)
	if p == "" {
		return backends.Describe(backends.ErrPermission, "remove /: refusing to remove the root of the mount")
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return fmt.Errorf("remove %s: %w", display(p), err)
	}
	defer s.end(nil)
	e, err := b.stat(s, p)
	if err != nil {
		return err
	}
	if !e.IsDir {
		return opError("remove", p, s.do(func(c *sftp.Client) error { return c.Remove(b.remote(p)) }))
	}
	err = s.do(func(c *sftp.Client) error { return c.RemoveDirectory(b.remote(p)) })
	if err == nil {
		return nil
	}
	err = opError("rmdir", p, err)
	if isFailure(err) {
		// OpenSSH says only "failure" for ENOTEMPTY.
		empty, leftovers, lerr := b.isEmptyDir(s, p)
		if lerr == nil && !empty && leftovers != nil {
			// The directory looks empty in the mount: only leftovers of
			// killed mounts' uploads are in it. They go, then it does.
			for _, n := range leftovers {
				rm := b.remote(path.Join(p, n))
				if err := s.do(func(c *sftp.Client) error { return c.Remove(rm) }); err != nil && !errors.Is(classify(err), backends.ErrNotFound) {
					return &OpError{Op: "rmdir", Path: p, Kind: backends.ErrNotEmpty}
				}
				b.log.Info("sftp: removed the temporary file of an upload cut off long ago (a mount killed mid-upload)",
					"server", b.hostPort, backends.NameAttr("path", path.Join(p, n)))
			}
			return opError("rmdir", p, s.do(func(c *sftp.Client) error { return c.RemoveDirectory(b.remote(p)) }))
		}
		if lerr == nil && !empty {
			return &OpError{Op: "rmdir", Path: p, Kind: backends.ErrNotEmpty}
		}
	}
	return err
}

// isEmptyDir lists p (including cloudmount's hidden files, which count).
// When p holds nothing but leftovers (isLeftover), they are returned.
func (b *Backend) isEmptyDir(s *session, p string) (empty bool, leftovers []string, err error) {
	var fis []os.FileInfo
	err = s.transfer(func(c *sftp.Client) error {
		var err error
		fis, err = c.ReadDir(b.remote(p))
		return err
	}, nil)
	if err != nil {
		return false, nil, err
	}
	now := time.Now()
	empty = true
	onlyLeftovers := true
	for _, fi := range fis {
		if fi.Name() == "." || fi.Name() == ".." {
			continue
		}
		empty = false
		if isLeftover(fi.Name(), fi.ModTime(), now, b.leftoverAge) {
			leftovers = append(leftovers, fi.Name())
		} else {
			onlyLeftovers = false
		}
	}
	if !onlyLeftovers {
		leftovers = nil
	}
	return empty, leftovers, nil
}
