package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefaultSocketDirs(t *testing.T) {
	me := os.Geteuid()
	oldHome := userHome
	userHome = func(uid int) string {
		if uid == 2000 {
			return "" // no usable home
		}
		return fmt.Sprintf("/home/u%d", uid)
	}
	t.Cleanup(func() { userHome = oldHome })
	home := func(uid int) string { return fmt.Sprintf("/home/u%d/.cache/cloudmount/sockets", uid) }
	tests := []struct {
		uid  int
		xdg  string
		want []string
	}{
		{uid: 1000, want: []string{"/run/user/1000/cloudmount", home(1000), "/tmp/cloudmount-1000"}},
		{uid: 2000, want: []string{"/run/user/2000/cloudmount", "/tmp/cloudmount-2000"}},
		{uid: me, xdg: "/run/user/4242", want: []string{"/run/user/4242/cloudmount", fmt.Sprintf("/run/user/%d/cloudmount", me), home(me), fmt.Sprintf("/tmp/cloudmount-%d", me)}},
		{uid: me, xdg: "relative/dir", want: []string{fmt.Sprintf("/run/user/%d/cloudmount", me), home(me), fmt.Sprintf("/tmp/cloudmount-%d", me)}},
	}
	for _, tc := range tests {
		if (tc.uid == 1000 || tc.uid == 2000) && tc.uid == me {
			continue
		}
		t.Setenv("XDG_RUNTIME_DIR", tc.xdg)
		want := tc.want
		if tc.uid == 0 {
			want = append([]string{"/run/cloudmount"}, want...)
		}
		if got := defaultSocketDirs(tc.uid); !slices.Equal(got, dedupe(want)) {
			t.Errorf("uid %d, XDG_RUNTIME_DIR=%q: %v, want %v", tc.uid, tc.xdg, got, want)
		}
	}
	if name := controlSocketName("/home/a/cloud"); len(name) != 32+len(".sock") || name == controlSocketName("/home/a/cloud2") {
		t.Errorf("socket name %q", name)
	}
}

func TestEnsureSocketDir(t *testing.T) {
	me := os.Geteuid()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // "" = accepted
	}{
		{name: "created", setup: func(*testing.T, string) {}},
		{name: "existing 0700", setup: func(t *testing.T, dir string) { mkdir(t, dir, 0o700) }},
		{name: "group readable", setup: func(t *testing.T, dir string) { mkdir(t, dir, 0o750) },
			want: "has mode 0750, not 0700; refusing it"},
		{name: "symlink", setup: func(t *testing.T, dir string) {
			real := dir + "-real"
			mkdir(t, real, 0o700)
			if err := os.Symlink(real, dir); err != nil {
				t.Fatal(err)
			}
		}, want: "is not a directory"},
		{name: "a file", setup: func(t *testing.T, dir string) { os.WriteFile(dir, nil, 0o600) }, want: "is not a directory"},
		{name: "someone else's", setup: func(t *testing.T, dir string) {
			if me != 0 {
				t.Skip("needs root to make a directory of another user")
			}
			mkdir(t, dir, 0o700)
			if err := os.Chown(dir, 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, want: "is not owned by uid 0 but by uid 4242; refusing it"},
		{name: "made first by another user, mode 0777", setup: func(t *testing.T, dir string) {
			if me != 0 {
				t.Skip("needs root to make a directory of another user")
			}
			mkdir(t, dir, 0o777)
			if err := os.Chown(dir, 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, want: "is not owned by uid 0 but by uid 4242"},
		{name: "grandparent writable by all, not sticky", setup: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o777); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o700) })
		}, want: "is writable by others and not sticky"},
		{name: "parent writable by all, not sticky", setup: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Dir(dir), 0o777); err != nil {
				t.Fatal(err)
			}
		}, want: "is writable by others and not sticky"},
		{name: "parent writable by all, sticky", setup: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Dir(dir), 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "parent of another user", setup: func(t *testing.T, dir string) {
			if me != 0 {
				t.Skip("needs root to make a directory of another user")
			}
			if err := os.Chown(filepath.Dir(dir), 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, want: "belongs to uid 4242, not 0 or root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p", "cloudmount")
			mkdir(t, filepath.Dir(dir), 0o755)
			tc.setup(t, dir)
			err := ensureSocketDir(dir, me)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("mode %v %v", fi.Mode(), err)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// mkdir makes dir with exactly mode perm.
func mkdir(t *testing.T, dir string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
}

func TestListenControlFallsBack(t *testing.T) {
	dirs, mp := controlEnv(t)
	mkdir(t, dirs[0], 0o755) // unsafe: refused, the next one is used
	s, err := listenControl(mp, os.Geteuid(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(slog.New(slog.DiscardHandler))
	if want := filepath.Join(dirs[1], controlSocketName(mp)); s.path != want {
		t.Fatalf("socket at %s, want %s", s.path, want)
	}
	// A client finds it there.
	if p, ok := findSocketFile(mp, -1); !ok || p != s.path {
		t.Fatalf("client finds %q %v", p, ok)
	}

	socketDirs = func(int) []string { return []string{"/" + strings.Repeat("d", 100)} }
	if _, err := listenControl(mp, os.Geteuid(), slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "longer than 107 bytes") {
		t.Fatalf("long path: %v", err)
	}
	if _, err := listenControl("/dev/fd/3", os.Geteuid(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a /dev/fd mountpoint got a socket")
	}
}

func TestParseMounts(t *testing.T) {
	const info = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
61 22 0:52 / /home/a/my\040cloud rw,nosuid,nodev,relatime shared:33 - fuse.cloudmount https://a@h/dav/ rw,user_id=1000,group_id=1000
62 22 0:53 / /mnt/sshfs rw,relatime - fuse.sshfs a@h: rw,user_id=0,group_id=0
63 61 0:54 / /home/a/my\040cloud/inner rw shared:34 master:2 - tmpfs tmpfs rw
bogus line
`
	mounts, err := parseMounts(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{Mountpoint: "/", FSType: "ext4", Source: "/dev/sda1", UID: -1},
		{Mountpoint: "/home/a/my cloud", FSType: cloudmountFSType, Source: "https://a@h/dav/", UID: 1000},
		{Mountpoint: "/mnt/sshfs", FSType: "fuse.sshfs", Source: "a@h:", UID: 0},
		{Mountpoint: "/home/a/my cloud/inner", FSType: "tmpfs", Source: "tmpfs", UID: -1},
	}
	if !slices.Equal(mounts, want) {
		t.Fatalf("got %+v\nwant %+v", mounts, want)
	}
	tests := []struct {
		path, mount, rel string
		cloud            bool
	}{
		{"/home/a/my cloud", "/home/a/my cloud", "", true},
		{"/home/a/my cloud/x/y", "/home/a/my cloud", "x/y", true},
		{"/home/a/my cloudy", "/", "home/a/my cloudy", false},
		{"/home/a/my cloud/inner/z", "/home/a/my cloud/inner", "z", false},
		{"/mnt/sshfs", "/mnt/sshfs", "", false},
	}
	for _, tc := range tests {
		m, rel, ok := within(mounts, tc.path)
		if !ok || m.Mountpoint != tc.mount || rel != tc.rel {
			t.Errorf("within(%q) = %q %q %v, want %q %q", tc.path, m.Mountpoint, rel, ok, tc.mount, tc.rel)
		}
		if _, _, ok := cloudmountWithin(mounts, tc.path); ok != tc.cloud {
			t.Errorf("cloudmountWithin(%q) = %v", tc.path, ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestSocketDirInHome: in the home directory, the directories up to the
// socket directory are made 0700 where missing; a home that others can
// write to is refused.
func TestSocketDirInHome(t *testing.T) {
	me := os.Geteuid()
	home, err := os.MkdirTemp("", "h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	oldHome := userHome
	userHome = func(int) string { return home }
	t.Cleanup(func() { userHome = oldHome })
	dir := filepath.Join(home, homeSocketDir)
	if err := ensureSocketDir(dir, me); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(home, ".cache"), filepath.Join(home, ".cache/cloudmount"), dir} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("%s: %v %v, want a directory with mode 0700", p, fi.Mode(), err)
		}
	}
	// An existing ~/.cache keeps its mode.
	os.RemoveAll(filepath.Join(home, ".cache"))
	mkdir(t, filepath.Join(home, ".cache"), 0o755)
	if err := ensureSocketDir(dir, me); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := ensureSocketDir(dir, me); err == nil || !strings.Contains(err.Error(), home+" is writable by others") {
		t.Fatalf("home writable by all: %v", err)
	}
}

// TestNoSafeSocketDir: when every place is refused, the daemon learns it
// before it mounts, from an error that names each directory, why it was
// refused and what to do; a mountpoint handed over as /dev/fd/N is told
// apart.
func TestNoSafeSocketDir(t *testing.T) {
	dirs, mp := controlEnv(t)
	mkdir(t, dirs[0], 0o755)
	mkdir(t, dirs[1], 0o777)
	for name, err := range map[string]error{
		"checkControlPlace": checkControlPlace(mp, os.Geteuid()),
		"listenControl": func() error {
			_, err := listenControl(mp, os.Geteuid(), slog.New(slog.DiscardHandler))
			return err
		}(),
	} {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		for _, want := range []string{
			"no safe directory for the control socket of " + mp,
			"cloudmount status and cloudmount sync could not reach the mount; not mounting",
			dirs[0] + " has mode 0755, not 0700",
			dirs[1] + " has mode 0777, not 0700",
			"must be removed by root",
			"set XDG_RUNTIME_DIR",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q lacks %q", name, err, want)
			}
		}
		if errors.Is(err, errMountpointUnknown) {
			t.Errorf("%s: %v counts as an unknown mountpoint", name, err)
		}
	}
	if err := checkControlPlace("/dev/fd/3", os.Geteuid()); !errors.Is(err, errMountpointUnknown) {
		t.Errorf("/dev/fd/3: %v", err)
	}
	// Once one directory is fixed, the socket goes there.
	if err := os.Chmod(dirs[1], 0o700); err != nil {
		t.Fatal(err)
	}
	if err := checkControlPlace(mp, os.Geteuid()); err != nil {
		t.Fatal(err)
	}
}
