package integration

import (
	"path/filepath"
	"testing"
	"time"
)

// TestRemountKeepsMetadata sets mtime (with nanoseconds) and mode, unmounts
// and mounts again, and checks they are still there: with the same cache
// directory and with a fresh cache directory, on every server (dead
// properties on Apache, the metadata file per directory elsewhere).
func TestRemountKeepsMetadata(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		dir := m.Path("meta")
		bash(t, m.Dir, `
mkdir meta meta/sub
printf 'some content\n' > meta/file
: > meta/empty
chmod 0600 meta/file
chmod 0750 meta/sub
touch -d '2001-02-03 04:05:06.123456789 UTC' meta/file
touch -d '2002-03-04 05:06:07.000000001 UTC' meta/empty
touch -d '2003-04-05 06:07:08.5 UTC' meta/sub
`)
		want := map[string]struct {
			mtime time.Time
			mode  uint32
		}{
			"file":  {time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC), 0o100600},
			"empty": {time.Date(2002, 3, 4, 5, 6, 7, 1, time.UTC), 0o100644},
			"sub":   {time.Date(2003, 4, 5, 6, 7, 8, 500000000, time.UTC), 0o040750},
		}
		check := func(t *testing.T, when string) {
			t.Helper()
			for name, w := range want {
				st := lstat(t, filepath.Join(dir, name))
				if got := time.Unix(st.Mtim.Unix()); !got.Equal(w.mtime) {
					t.Errorf("%s: %s: mtime %v, want %v", when, name, got.UTC(), w.mtime)
				}
				if st.Mode != w.mode {
					t.Errorf("%s: %s: mode %o, want %o", when, name, st.Mode, w.mode)
				}
			}
			wantFile(t, filepath.Join(dir, "file"), []byte("some content\n"))
		}
		check(t, "before unmount")
		m = m.Remount(t, false)
		check(t, "after remount with the same cache directory")
		m = m.Remount(t, true)
		check(t, "after remount with a fresh cache directory")
	})
}
