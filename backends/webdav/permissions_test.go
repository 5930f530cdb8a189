package webdav

import (
	"testing"

	"github.com/cloudmount/cloudmount/backends"
)

// TestDenyOf reads oc:permissions as ownCloud and Nextcloud send them.
func TestDenyOf(t *testing.T) {
	all := backends.DenyWrite | backends.DenyCreateFile | backends.DenyCreateDir |
		backends.DenyDelete | backends.DenyRename | backends.DenyMove
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		perms *string
		dir   bool
		want  backends.Deny
	}{
		{nil, false, 0}, // no property: another server, nothing denied
		{nil, true, 0},
		{str("RGDNVW"), false, 0},    // the user's own file
		{str("RGDNVCK"), true, 0},    // the user's own folder
		{str(" SRGDNVW "), false, 0}, // white space around
		{str("SMG"), false, all &^ (backends.DenyCreateFile | backends.DenyCreateDir)},
		{str("SMG"), true, all &^ backends.DenyWrite},
		{str(""), false, backends.DenyWrite | backends.DenyDelete | backends.DenyRename | backends.DenyMove},
		{str("RGDNVC"), true, backends.DenyCreateDir}, // files may be made, folders not
		{str("GNV"), false, backends.DenyWrite | backends.DenyDelete},
		{str("GDW"), false, backends.DenyRename | backends.DenyMove},
		{str("W"), true, all &^ backends.DenyWrite}, // W says nothing of a folder
	} {
		if got := denyOf(c.perms, c.dir); got != c.want {
			p := "<absent>"
			if c.perms != nil {
				p = *c.perms
			}
			t.Errorf("denyOf(%q, dir=%v) = %06b, want %06b", p, c.dir, got, c.want)
		}
	}
}
