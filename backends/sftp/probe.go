package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Capabilities reports what the server can do. The first call probes
// whether the root is writable (by creating and removing a small file
// there) and reads the quota; later calls return the same answer.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	if b.caps == nil {
		c, err := b.probe(ctx)
		if err != nil {
			return backends.Capabilities{}, err
		}
		b.caps = &c
		b.log.Debug("sftp capabilities", "server", b.String(), "read_only", c.ReadOnly, "atomic_put", c.AtomicPut,
			"hard_links", c.HardLinks, "quota", c.Quota)
	}
	c := *b.caps
	c.Notes = append([]string(nil), c.Notes...)
	return c, nil
}

func (b *Backend) probe(ctx context.Context) (caps backends.Capabilities, err error) {
	note := func(format string, args ...any) { caps.Notes = append(caps.Notes, fmt.Sprintf(format, args...)) }
	caps.MTime = backends.MetaField{Stored: true, OnPut: true, Precision: time.Second}
	caps.Mode = backends.MetaField{Stored: true, OnPut: true}
	caps.Symlinks = true
	caps.HardLinks = b.hardlink
	caps.Hashes = b.CanHash()
	caps.AtomicPut = b.posixRename
	caps.AtomicRename = true

	s, err := b.session(ctx, weightCall)
	if err != nil {
		return caps, err
	}
	defer s.end(nil)

	var exts []string
	for _, name := range knownExtensions {
		if data, ok := s.c.sftp.HasExtension(name); ok {
			exts = append(exts, name+" "+data)
		}
	}
	if len(exts) == 0 {
		note("SFTP extensions: none")
	} else {
		note("SFTP extensions: %s", strings.Join(exts, ", "))
	}
	note("mtime and mode are kept by the server (setstat), mtime to the second; owner, hash and file types are not: the local index keeps them")
	note("versions are size and mtime: a rewrite within the same second that keeps the size is not seen")
	if b.posixRename {
		note("uploads replace files atomically (posix-rename@openssh.com)")
	} else {
		note("no posix-rename@openssh.com: replacing a file removes it first, so readers may briefly find it missing")
	}
	if b.hardlink {
		note("hard links: yes (hardlink@openssh.com)")
	} else {
		note("hard links: no (no hardlink@openssh.com)")
	}
	note("conditional uploads are checked by a stat just before the rename: a change by another client in that round trip is not seen")
	note("%s", b.hashNote)

	if err := b.probeWritable(s, &caps, note); err != nil {
		return caps, err
	}
	if !b.statvfs {
		note("quota: not reported (no statvfs@openssh.com)")
	} else if q, err := b.quota(s); err != nil {
		note("quota: not reported (%v)", err)
	} else {
		caps.Quota = true
		note("quota: %d bytes available, %d used", q.Available, q.Used)
	}
	return caps, nil
}

// probeWritable creates and removes a file in the root; a refusal makes
// the mount read-only.
func (b *Backend) probeWritable(s *session, caps *backends.Capabilities, note func(string, ...any)) error {
	name := ProbePrefix + randomName()
	err := s.do(func(c *sftp.Client) error {
		f, err := c.OpenFile(b.remote(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return err
		}
		return f.Close()
	})
	if err == nil {
		if rerr := s.do(func(c *sftp.Client) error { return c.Remove(b.remote(name)) }); rerr != nil {
			b.log.Warn("sftp: cannot remove the probe file", "server", b.hostPort, backends.NameAttr("path", name), "error", rerr)
		}
		return nil
	}
	oe := opError("create", name, err)
	switch {
	case errors.Is(oe, backends.ErrPermission):
		caps.ReadOnly = true
		note("the server refused a test file in the root (permission denied): the mount is read-only " +
			"(where only subdirectories are writable, as in a chroot, mount one of those)")
		return nil
	case errors.Is(oe, backends.ErrUnavailable):
		return oe
	}
	note("a test file could not be created in the root (%v): not treated as read-only", oe)
	return nil
}

// Quota returns the space of the file system that holds the root
// (statvfs@openssh.com): Available is what an unprivileged user may use.
func (b *Backend) Quota(ctx context.Context) (backends.Quota, error) {
	if !b.statvfs {
		return backends.Quota{}, backends.Describe(backends.ErrUnsupported, "quota: %s has no statvfs@openssh.com", b.hostPort)
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return backends.Quota{}, fmt.Errorf("quota: %w", err)
	}
	defer s.end(nil)
	return b.quota(s)
}

func (b *Backend) quota(s *session) (backends.Quota, error) {
	var st *sftp.StatVFS
	err := s.do(func(c *sftp.Client) error {
		var err error
		st, err = c.StatVFS(b.root)
		return err
	})
	if err != nil {
		return backends.Quota{}, opError("statvfs", "", err)
	}
	frsize := st.Frsize
	if frsize == 0 {
		frsize = st.Bsize
	}
	used := (st.Blocks - min(st.Bfree, st.Blocks)) * frsize
	return backends.Quota{Used: clampInt64(used), Available: clampInt64(st.Bavail * frsize)}, nil
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// full reports whether the file system of the root has no space or no
// inodes left for the user: the likely cause of a bare "failure" while
// writing.
func (b *Backend) full(s *session) bool {
	if !b.statvfs {
		return false
	}
	var st *sftp.StatVFS
	err := s.do(func(c *sftp.Client) error {
		var err error
		st, err = c.StatVFS(b.root)
		return err
	})
	return err == nil && (st.Bavail == 0 || (st.Files > 0 && st.Favail == 0))
}

// knownExtensions are the SFTP extensions the probe looks for (OpenSSH's).
var knownExtensions = []string{
	"posix-rename@openssh.com", "statvfs@openssh.com", "fstatvfs@openssh.com", "hardlink@openssh.com",
	"fsync@openssh.com", "lsetstat@openssh.com", "limits@openssh.com", "expand-path@openssh.com",
	"copy-data", "home-directory", "users-groups-by-id@openssh.com",
}
