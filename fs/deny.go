package fs

import (
	"syscall"

	"github.com/cloudmount/cloudmount/backends"
)

// denies reports whether the server said it refuses any of d for the node
// (Entry.Deny: a read-only share). A node made here and not yet on the
// server has no such word. The mount answers EACCES at once, before
// anything is staged or queued that the server would turn down.
func (n *Node) denies(d backends.Deny) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.local && n.entry.Deny&d != 0
}

// denyRename checks a rename of src (in n) to newParent against what the
// server refuses: a new name (N), another directory (V), a new child of the
// target directory (C, K), and replacing dst's content or removing it.
func (n *Node) denyRename(src, newParent, dst *Node) syscall.Errno {
	srcDir := src.StableAttr().Mode == syscall.S_IFDIR
	create := backends.DenyCreateFile
	if srcDir {
		create = backends.DenyCreateDir
	}
	switch {
	case newParent == n && src.denies(backends.DenyRename),
		newParent != n && src.denies(backends.DenyMove),
		newParent != n && newParent.denies(create),
		dst != nil && dst.denies(backends.DenyWrite|backends.DenyDelete):
		return syscall.EACCES
	}
	return 0
}

// deniedPerm takes the write bits from perm where the server refuses
// changes: a file it will not let the user write, a directory in which
// nothing can be made.
func deniedPerm(mode uint32, e backends.Entry, perm uint32) uint32 {
	switch {
	case mode == syscall.S_IFDIR:
		if e.Deny&(backends.DenyCreateFile|backends.DenyCreateDir) == backends.DenyCreateFile|backends.DenyCreateDir {
			return perm &^ 0o222
		}
	case mode != syscall.S_IFLNK && e.Deny&backends.DenyWrite != 0:
		return perm &^ 0o222
	}
	return perm
}
