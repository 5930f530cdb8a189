package webdav

import (
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// denyOf reads oc:permissions, the letters ownCloud and Nextcloud give
// each entry for what the user may do with it (their WebDAV documentation:
// S shared, R shareable, M mounted, G readable, D deletable, N renameable,
// V movable, W writable file, C may create files in a folder, K may create
// folders in it), into what the mount must refuse. An absent property
// (nil: every other server) denies nothing; a present one denies what it
// leaves out. Letters it does not know are ignored.
func denyOf(perms *string, isDir bool) backends.Deny {
	if perms == nil {
		return 0
	}
	p := strings.TrimSpace(*perms)
	has := func(c byte) bool { return strings.IndexByte(p, c) >= 0 }
	var d backends.Deny
	if isDir {
		if !has('C') {
			d |= backends.DenyCreateFile
		}
		if !has('K') {
			d |= backends.DenyCreateDir
		}
	} else if !has('W') {
		d |= backends.DenyWrite
	}
	if !has('D') {
		d |= backends.DenyDelete
	}
	if !has('N') {
		d |= backends.DenyRename
	}
	if !has('V') {
		d |= backends.DenyMove
	}
	return d
}
