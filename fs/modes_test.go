package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
)

// TestModesShown checks the permission bits shown for files and
// directories with and without a mode stored on the server, under
// FileMode, DirMode and Umask: the defaults count only where no mode is
// stored, the umask masks every mode shown (symbolic links excepted), and a
// chmod stores the mode as given.
func TestModesShown(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		// file and dir: no stored mode; stored: a file stored as 0666;
		// chmodded: chmod 0775 through the mount; newDir: mkdir 0755.
		file, dir, stored, chmodded, newDir os.FileMode
	}{
		{"defaults", Options{}, 0o644, 0o755, 0o666, 0o775, 0o755},
		{"file_mode and dir_mode", Options{FileMode: 0o600, DirMode: 0o700}, 0o600, 0o700, 0o666, 0o775, 0o755},
		{"umask 027 from 0666 and 0777", Options{FileMode: 0o666, DirMode: 0o777, Umask: 0o027}, 0o640, 0o750, 0o640, 0o750, 0o750},
		{"umask 077 with the default modes", Options{Umask: 0o077}, 0o600, 0o700, 0o600, 0o700, 0o700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memory.New()
			ctx := t.Context()
			if _, err := b.Put(ctx, "plain", bytes.NewReader([]byte("x")), 1, backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o666)
			if _, err := b.Put(ctx, "stored", bytes.NewReader([]byte("x")), 1, backends.PutOptions{Meta: backends.Meta{Mode: &mode}}); err != nil {
				t.Fatal(err)
			}
			if err := b.Mkdir(ctx, "dir"); err != nil {
				t.Fatal(err)
			}
			tc.o.UID, tc.o.GID = uint32(os.Getuid()), uint32(os.Getgid())
			mnt := mountMem(t, b, tc.o)
			if err := os.Symlink("plain", filepath.Join(mnt, "link")); err != nil {
				t.Fatal(err)
			}
			perm := func(name string, lstat bool) os.FileMode {
				t.Helper()
				st, err := os.Stat(filepath.Join(mnt, name))
				if lstat {
					st, err = os.Lstat(filepath.Join(mnt, name))
				}
				if err != nil {
					t.Fatal(err)
				}
				return st.Mode().Perm()
			}
			for _, c := range []struct {
				name string
				got  os.FileMode
				want os.FileMode
			}{
				{"file without a stored mode", perm("plain", false), tc.file},
				{"directory without a stored mode", perm("dir", false), tc.dir},
				{"file stored as 0666", perm("stored", false), tc.stored},
				{"symbolic link", perm("link", true), 0o777},
			} {
				if c.got != c.want {
					t.Errorf("%s: %04o, want %04o", c.name, c.got, c.want)
				}
			}

			if err := os.Chmod(filepath.Join(mnt, "plain"), 0o775); err != nil {
				t.Fatal(err)
			}
			if got := perm("plain", false); got != tc.chmodded {
				t.Errorf("after chmod 0775: %04o, want %04o", got, tc.chmodded)
			}
			if err := os.Mkdir(filepath.Join(mnt, "new"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(mnt, "new"), 0o755); err != nil { // whatever the test's umask
				t.Fatal(err)
			}
			if got := perm("new", false); got != tc.newDir {
				t.Errorf("mkdir 0755: %04o, want %04o", got, tc.newDir)
			}
			syncMount(t, mnt)
			// The server keeps what chmod asked for, not what is shown.
			if e, err := b.Stat(ctx, "plain"); err != nil || e.Meta.Mode == nil || *e.Meta.Mode != 0o775 {
				t.Errorf("server's mode after chmod 0775: %+v %v", e.Meta, err)
			}
		})
	}
}
