package mountutil

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCheckMountpoint(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	full := filepath.Join(dir, "full")
	file := filepath.Join(dir, "file")
	link := filepath.Join(dir, "link")
	for _, d := range []string{empty, full} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(empty, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		nonempty bool
		want     string // absolute path, or an error substring
		wantErr  bool
	}{
		{empty, false, empty, false},
		{link, false, empty, false},
		{full, true, full, false},
		{filepath.Join(dir, "missing"), false, "mountpoint " + filepath.Join(dir, "missing") + " does not exist", true},
		{file, false, "mountpoint " + file + " is not a directory", true},
		{full, false, "mountpoint " + full + " is not empty", true},
		{"/proc", true, "mountpoint /proc is already a mount point", true},
		{"/dev/fd/7", false, "/dev/fd/7", false},
	}
	for _, tt := range tests {
		got, err := CheckMountpoint(tt.path, tt.nonempty)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckMountpoint(%q) error = %v, want %q", tt.path, err, tt.want)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CheckMountpoint(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
		}
	}
}

func TestRelativeMountpoint(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("mnt", 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := CheckMountpoint("mnt", false)
	want, _ := filepath.EvalSymlinks(filepath.Join(dir, "mnt"))
	if err != nil || got != want {
		t.Errorf("CheckMountpoint(mnt) = %q, %v; want %q", got, err, want)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /home/a\040b/cloud rw,nosuid,nodev,relatime shared:2 - fuse.cloudmount https://alice@host/dav/ rw,user_id=1000
37 22 0:33 / /tab\011and\134back rw - tmpfs tmpfs rw
short line
`
	got, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/home/a b/cloud", "/tab\tand\\back"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIsMounted(t *testing.T) {
	if ok, err := IsMounted("/"); err != nil || !ok {
		t.Errorf("IsMounted(/) = %v, %v", ok, err)
	}
	if ok, err := IsMounted(t.TempDir()); err != nil || ok {
		t.Errorf("IsMounted(tempdir) = %v, %v", ok, err)
	}
}

func TestUnmountNotMounted(t *testing.T) {
	dir := t.TempDir()
	err := Unmount(dir, 0)
	if err == nil || err.Error() != dir+" is not mounted" {
		t.Errorf("Unmount(not mounted) = %v", err)
	}
}

func TestFDMountpoint(t *testing.T) {
	for in, want := range map[string]int{"/dev/fd/3": 3, "/dev/fd/12": 12} {
		if n, ok := FDMountpoint(in); !ok || n != want {
			t.Errorf("FDMountpoint(%q) = %d, %v", in, n, ok)
		}
	}
	for _, in := range []string{"/dev/fd/", "/dev/fd/x", "/mnt", "/dev/fd/-1"} {
		if _, ok := FDMountpoint(in); ok {
			t.Errorf("FDMountpoint(%q) = true", in)
		}
	}
}
