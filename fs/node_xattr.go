package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
)

// xattrSHA256 holds a file's SHA-256 in hex. It is known without a download
// for files written through cloudmount and files whose server stores it;
// otherwise it is computed on request and remembered for that version.
//
// listxattr names it only where it is known, so that tools that read every
// attribute they are shown (file managers, cp -a from the mount) never start
// a download. Other user attributes are not stored: reads answer "no such
// attribute", writes "not supported", so cp -a and rsync -X carry on.
const xattrSHA256 = "user.cloudmount.sha256"

// ls -l asks for two attributes of every file it lists: its ACL
// (system.posix_acl_access) and its SELinux label (security.selinux), and
// ls --color may ask for security.capability. The kernel passes each ask
// to the daemon, a round trip per file and name. cloudmount stores none of
// these, and answers so: "not supported" (ENOTSUP), as a filesystem without
// ACLs or labels does (sshfs, davfs2, vfat, NFS without labels). ls, and
// other tools built on gnulib, then take the whole filesystem to have none
// and stop asking after its first file; "no such attribute" (ENODATA, the
// answer before) made them ask again for every file.
//
// The kernel cannot keep these answers instead: it keeps no answer for
// security.* names, and the ACLs it keeps with FUSE_POSIX_ACL are dropped
// at every READDIRPLUS and lookup of the file, which ls -l does first
// (mount.go leaves FUSE_POSIX_ACL off). getfacl shows the mode, setfacl
// answers ENOTSUP, chmod is unchanged.
const (
	xattrACLPrefix      = "system.posix_acl_"
	xattrSecurityPrefix = "security."
)

// noXattrs reports whether attr is in a namespace cloudmount stores nothing
// in: its reads, writes and removals answer ENOTSUP.
func noXattrs(attr string) bool {
	return strings.HasPrefix(attr, xattrACLPrefix) || strings.HasPrefix(attr, xattrSecurityPrefix)
}

// getxattrHook, when set (by tests), sees every GETXATTR that reaches the
// daemon.
var getxattrHook atomic.Pointer[func(f *fsys, attr string)]

// Getxattr implements fusefs.NodeGetxattrer.
func (n *Node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if h := getxattrHook.Load(); h != nil {
		(*h)(n.fs, attr)
	}
	if noXattrs(attr) {
		return 0, syscall.ENOTSUP
	}
	if attr != xattrSHA256 || n.StableAttr().Mode != syscall.S_IFREG {
		return 0, syscall.ENODATA
	}
	// Like an open, a hash query answers for the server's current
	// version once the attribute timeout has passed.
	if errno := n.revalidate(ctx, n.fs.opts.AttrTimeout); errno != 0 {
		return 0, errno
	}
	sum, errno := n.sha256(ctx)
	if errno != 0 {
		return 0, errno
	}
	return xattrReply(dest, sum)
}

// Listxattr implements fusefs.NodeListxattrer.
func (n *Node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.StableAttr().Mode != syscall.S_IFREG || n.knownSHA256() == "" {
		return 0, 0
	}
	return xattrReply(dest, xattrSHA256+"\x00")
}

// Setxattr implements fusefs.NodeSetxattrer. The hash follows the content:
// setting it to the value it has (rsync -X, cp -a from another cloudmount)
// succeeds, any other value is refused.
func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr == xattrSHA256 && n.StableAttr().Mode == syscall.S_IFREG {
		if sum, errno := n.sha256(ctx); errno == 0 && sum == string(data) {
			return 0
		}
	}
	return syscall.ENOTSUP
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (n *Node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	switch {
	case attr == xattrSHA256:
		// Derived from the content, it cannot go; saying so would stop
		// rsync -X, which removes what its source lacks.
		return 0
	case noXattrs(attr):
		return syscall.ENOTSUP
	}
	return syscall.ENODATA
}

// xattrReply copies val into dest, or reports the size needed.
func xattrReply(dest []byte, val string) (uint32, syscall.Errno) {
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// knownSHA256 is the hash as far as it is known without reading data.
func (n *Node) knownSHA256() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if st := n.staged; st != nil && (st.dirty || n.local) {
		return st.knownSum()
	}
	return n.entry.Meta.SHA256
}

// sha256 returns the file's hash: staged content is hashed locally; a
// server version without a known hash is read once, hashed, and the hash
// stored with it (on the server where it can keep it, else in the index).
func (n *Node) sha256(ctx context.Context) (string, syscall.Errno) {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	st, e := n.staged, n.entry
	n.mu.Unlock()
	if st != nil {
		sum, err := st.sum()
		return sum, toErrno(err)
	}
	if e.Meta.SHA256 != "" {
		return e.Meta.SHA256, 0
	}
	p := n.path()
	sum, err := n.serverHash(ctx, p, e)
	if sum == "" && err == nil {
		sum, err = n.hashContent(ctx)
	}
	if err != nil {
		return "", toErrno(err)
	}
	ne, err := n.fs.storeMeta(ctx, p, e, backends.Meta{SHA256: sum}, e.Version)
	if err != nil {
		n.fs.log.Debug("hash computed but not stored", "path", p, "err", err)
		return sum, 0
	}
	n.mu.Lock()
	if n.staged == nil && n.entry.Version == e.Version && n.fits(ne) {
		ne.Name = e.Name
		n.entry = ne
	}
	n.mu.Unlock()
	return sum, 0
}

// serverHash asks a server that computes hashes for the one of version e
// of the file at p: "" when it cannot, or when the file changed meanwhile
// (then the content is read and hashed here).
func (n *Node) serverHash(ctx context.Context, p string, e backends.Entry) (string, error) {
	h, ok := n.fs.be.(backends.Hasher)
	if !ok || !n.fs.caps.Hashes {
		return "", nil
	}
	cctx, cancel := n.fs.call(ctx)
	defer cancel()
	sum, err := h.SHA256(cctx, p)
	if err != nil {
		n.fs.log.Debug("the server did not hash the file; reading it", "path", p, "err", err)
		return "", nil
	}
	after, err := n.fs.be.Stat(cctx, p)
	if err != nil || after.Version != e.Version {
		return "", nil
	}
	return sum, nil
}

// hashContent reads the node's server version through the block cache and
// hashes it: blocks already cached (the file was just read, by rsync
// --checksum for one) cost no download, and the others are cached on the
// way.
func (n *Node) hashContent(ctx context.Context) (string, error) {
	var r remoteReader
	defer r.close()
	h := sha256.New()
	buf := make([]byte, cache.BlockSize)
	for off := int64(0); ; {
		k, err := r.readAt(ctx, n, buf, off)
		h.Write(buf[:k])
		off += int64(k)
		if err != nil {
			return "", err
		}
		if k < len(buf) {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
	}
}
