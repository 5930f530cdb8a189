package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTahoeReadOnly mounts the read-only cap (URI:DIR2-RO:…) of a
// directory with files put on the grid: the files read back, and every
// kind of change fails with EROFS ("Read-only file system"), in the
// system calls and in the shell; the grid's directory is unchanged.
func testTahoeReadOnly(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	hello := []byte("hello from a read-only cap\n")
	inner := randomBytes(300<<10, 5)
	d.WriteFile(t, "hello.txt", hello)
	d.WriteFile(t, "sub/inner.bin", inner)
	d.WriteFile(t, "empty/.keep", []byte("keep this directory around\n"))
	before, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}

	ro := d.readOnly(t)
	m := mountTahoe(t, ro, tahoeMountOptions{})
	if e, ok := mountedAt(m.Dir); ok {
		t.Logf("mount options of the read-only cap: %s", e.Options)
	}
	wantFile(t, m.Path("hello.txt"), hello)
	wantFile(t, m.Path("sub/inner.bin"), inner)
	if names := readDirNames(t, m.Dir); !slices.Equal(names, []string{"empty", "hello.txt", "sub"}) {
		t.Errorf("ls of the read-only mount: %q, want [empty hello.txt sub]", names)
	}

	p := m.Path
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"create a new file", func() error { return writeClose(p("new.txt"), []byte("x")) }},
		{"open an existing file for writing", func() error {
			f, err := os.OpenFile(p("hello.txt"), os.O_WRONLY, 0)
			if err == nil {
				_, err = f.Write([]byte("changed"))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			return err
		}},
		{"open an existing file with O_TRUNC", func() error {
			f, err := os.OpenFile(p("hello.txt"), os.O_WRONLY|os.O_TRUNC, 0)
			if err == nil {
				err = f.Close()
			}
			return err
		}},
		{"append", func() error {
			f, err := os.OpenFile(p("sub/inner.bin"), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.Write([]byte("more"))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			return err
		}},
		{"truncate", func() error { return os.Truncate(p("hello.txt"), 1) }},
		{"mkdir", func() error { return os.Mkdir(p("newdir"), 0o755) }},
		{"rmdir", func() error { return unix.Rmdir(p("empty")) }},
		{"unlink", func() error { return unix.Unlink(p("hello.txt")) }},
		{"unlink in a subdirectory", func() error { return unix.Unlink(p("sub/inner.bin")) }},
		{"rename", func() error { return os.Rename(p("hello.txt"), p("renamed.txt")) }},
		{"rename into a subdirectory", func() error { return os.Rename(p("hello.txt"), p("sub/hello.txt")) }},
		{"chmod", func() error { return os.Chmod(p("hello.txt"), 0o600) }},
		{"chmod a directory", func() error { return os.Chmod(p("sub"), 0o700) }},
		{"chown", func() error { return os.Lchown(p("hello.txt"), 12345, 12345) }},
		{"utimes", func() error {
			ts := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			return os.Chtimes(p("hello.txt"), ts, ts)
		}},
		{"symlink", func() error { return os.Symlink("hello.txt", p("link")) }},
		{"hard link", func() error { return os.Link(p("hello.txt"), p("hard")) }},
		{"mkfifo", func() error { return unix.Mkfifo(p("fifo"), 0o644) }},
		{"setxattr", func() error { return unix.Setxattr(p("hello.txt"), "user.test", []byte("v"), 0) }},
	} {
		err := op.do()
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on the read-only mount: %v, want EROFS (read-only file system)", op.name, err)
		}
	}
	out, err := runCmd(m.Dir, time.Minute, "bash", "-c", `touch new-by-touch; echo x > hello.txt; mkdir d; rm hello.txt; mv sub moved; cp hello.txt copy.txt`)
	if err == nil {
		t.Errorf("shell changes on the read-only mount succeeded:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, "Read-only file system") {
			t.Errorf("shell change on the read-only mount: %q, want \"Read-only file system\"", line)
		}
	}

	wantFile(t, m.Path("hello.txt"), hello)
	after, err := d.List("")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sortedKeys(before), sortedKeys(after)) {
		t.Errorf("the grid's directory changed under a read-only mount: %q, before %q", sortedKeys(after), sortedKeys(before))
	}
	if got, err := d.ReadFile("hello.txt"); err != nil || !bytes.Equal(got, hello) {
		t.Errorf("grid: hello.txt is %q (%v) after the read-only mount, want %q", got, err, hello)
	}
	st := m.Status(t)
	if st.QueuedFiles != 0 || len(st.Failed) != 0 {
		t.Errorf("the read-only mount queued or failed uploads: %s", st)
	}
}

// writeCapFile writes cap into a fresh file with mode and returns its name.
func writeCapFile(t testing.TB, cap string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "dir.cap")
	if err := os.WriteFile(f, []byte(cap+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

// testTahoeCapFile mounts a directory that has no alias from its
// capability in a file: in the mount(8) form `cloudmount tahoe:NAME MNT
// -o capfile=FILE,node_dir=DIR,...` and with `--capfile -` (standard
// input); files written through one show up through the other and on the
// grid. A capability file readable by others and a capability on the
// command line are refused, and the refusals do not repeat the
// capability.
func testTahoeCapFile(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	capFile := writeCapFile(t, d.cap, 0o600)
	a := mountTahoe(t, d, tahoeMountOptions{Source: "tahoe:from-a-file", OForm: true, Opts: []string{"capfile=" + capFile}})
	b := mountTahoe(t, d, tahoeMountOptions{Source: "tahoe:from-stdin", Args: []string{"--capfile", "-"}, Stdin: []byte(d.cap + "\n")})
	data := []byte("written through -o capfile=FILE\n")
	if err := writeClose(a.Path("a.txt"), data); err != nil {
		t.Fatal(err)
	}
	a.Sync(t)
	if got, err := d.ReadFile("a.txt"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("grid: a.txt is %q (%v), want %q", got, err, data)
	}
	eventually(t, 90*time.Second, func() error {
		got, err := os.ReadFile(b.Path("a.txt"))
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("the --capfile - mount shows a.txt as %q (%v), want %q", got, err, data)
		}
		return nil
	})

	for _, tc := range []struct {
		name string
		o    tahoeMountOptions
		want string // a part of the message
	}{
		{"a capability file readable by others", tahoeMountOptions{Source: "tahoe:loose", Args: []string{"--capfile", writeCapFile(t, d.cap, 0o644)}}, "chmod 600"},
		{"a capability on the command line", tahoeMountOptions{Source: "tahoe:" + d.cap}, "capability"},
		{"a capability as the alias with --capfile", tahoeMountOptions{Source: "tahoe:" + d.cap, Args: []string{"--capfile", capFile}}, "capability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := wantTahoeMountFails(t, d, tc.o)
			t.Logf("the refusal says: %s", strings.TrimSpace(out))
			if !strings.Contains(out, tc.want) {
				t.Errorf("the refusal does not say %q:\n%s", tc.want, out)
			}
			if leaks := capLeaks(out, d.cap); len(leaks) > 0 {
				t.Errorf("the refusal repeats the capability (%s):\n%s", strings.Join(leaks, "; "), out)
			}
		})
	}
}

// capSecretPart matches the fields of a capability that are secret keys
// (base32, 26 characters and more).
var capSecretPart = regexp.MustCompile(`^[a-z2-7]{26,}$`)

// capLeaks lists what of a capability text shows: "URI:" (also
// URL-escaped, as net/http errors quote URLs), or a secret field of one
// of the given caps in any surrounding; each with the number of
// occurrences and the first few places.
func capLeaks(text string, caps ...string) []string {
	var leaks []string
	report := func(what, needle string) {
		n := strings.Count(text, needle)
		if n == 0 {
			return
		}
		var places []string
		for i, from := 0, 0; i < 4; i++ {
			j := strings.Index(text[from:], needle)
			if j < 0 {
				break
			}
			places = append(places, fmt.Sprintf("%q", excerpt(text, from+j)))
			from += j + len(needle)
		}
		leaks = append(leaks, fmt.Sprintf("%s %d times, at %s", what, n, strings.Join(places, ", ")))
	}
	for _, marker := range []string{"URI:", "URI%3A", "URI%3a"} {
		report(fmt.Sprintf("%q", marker), marker)
	}
	for _, c := range caps {
		for _, f := range strings.Split(c, ":") {
			if capSecretPart.MatchString(f) {
				report("a key of the capability", f)
			}
		}
	}
	return leaks
}

// excerpt is the text before index i and a little after, for messages.
func excerpt(text string, i int) string {
	s := text[max(0, i-50):min(len(text), i+20)]
	return strings.ReplaceAll(s, "\n", `\n`) + "…"
}

// testTahoeNoCapLeaks checks that no capability (neither the "URI:" form,
// nor URL-escaped, nor a key of one) is in what other users or support
// requests could see: the daemon's log (with --debug, every FUSE
// request), its /proc/PID/cmdline and environ, the mount table,
// `cloudmount status` and `status --json`, `verify --json`, the names of
// all files in the cache directory, and the output of failed mounts (an
// alias that does not exist, a node that is down, a node directory that
// never ran, a capability of a directory the grid does not have). The
// mounts run through an alias, -o capfile and --capfile -.
func testTahoeNoCapLeaks(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	ro := d.readOnly(t)
	caps := []string{d.cap, ro.cap}
	check := func(t *testing.T, what, text string) {
		t.Helper()
		if leaks := capLeaks(text, caps...); len(leaks) > 0 {
			t.Errorf("%s shows a capability: %s", what, strings.Join(leaks, "; "))
		}
	}
	d.WriteFile(t, "on the grid.txt", randomBytes(100<<10, 9))

	for _, tc := range []struct {
		name string
		o    tahoeMountOptions
	}{
		{"alias", tahoeMountOptions{Args: []string{"--debug"}}},
		{"capfile", tahoeMountOptions{Source: "tahoe:leaks", OForm: true, Opts: []string{"capfile=" + writeCapFile(t, d.cap, 0o600), "debug"}}},
		{"capfile from stdin", tahoeMountOptions{Source: "tahoe:leaks-stdin", Args: []string{"--capfile", "-", "--debug"}, Stdin: []byte(d.cap)}},
		{"read-only alias", tahoeMountOptions{Source: "tahoe:" + ro.Alias, Args: []string{"--debug"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mountTahoe(t, d, tc.o)
			if tc.name != "read-only alias" {
				// Work that logs: creates, renames, removals, uploads.
				bash(t, m.Dir, `
mkdir -p "dir $RANDOM"
for i in 1 2 3; do head -c 5000 /dev/urandom > "f $i.bin"; done
mv "f 1.bin" "renamed.bin"; rm "f 2.bin"; chmod 600 "f 3.bin"
ln -s "renamed.bin" "link $RANDOM"
cat "on the grid.txt" > /dev/null
ls -lR > /dev/null`)
				m.Sync(t)
			} else {
				bash(t, m.Dir, `cat "on the grid.txt" > /dev/null; ls -lR > /dev/null; touch x 2>/dev/null || true`)
			}
			status, _, err := m.ctl(30*time.Second, "status", m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "cloudmount status", status)
			check(t, "cloudmount status --json", m.Status(t).String())
			verify, _, err := m.ctl(2*time.Minute, "verify", "--json", m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "cloudmount verify --json", verify)
			for _, f := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", m.PID(), f))
				if err != nil {
					t.Fatal(err)
				}
				check(t, "/proc/PID/"+f+" of the daemon", string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
			}
			mi, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				t.Fatal(err)
			}
			check(t, "/proc/self/mountinfo", string(mi))
			m.Unmount(t, "cloudmount")
			log, err := os.ReadFile(m.LogFile)
			if err != nil {
				t.Fatal(err)
			}
			if len(log) == 0 {
				t.Errorf("the daemon log %s is empty", m.LogFile)
			}
			check(t, "the daemon log", string(log))
			var names []string
			var withCaps []string
			err = filepath.WalkDir(m.CacheDir, func(p string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				names = append(names, p)
				if e.Type().IsRegular() {
					if b, err := os.ReadFile(p); err == nil && len(capLeaks(string(b), caps...)) > 0 {
						withCaps = append(withCaps, p)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			check(t, "the names of the files in the cache directory", strings.Join(names, "\n"))
			if len(withCaps) > 0 {
				// File caps in the metadata index are versions of files;
				// noted, not a failure (the cache directory is 0700).
				t.Logf("NOTE: files in the cache directory that hold capabilities (or keys of the mount's): %q", withCaps)
			}
		})
	}

	t.Run("failed mounts", func(t *testing.T) {
		other := *d
		other.cap = mutateCap(d.cap)
		noSuchDir := writeCapFile(t, other.cap, 0o600)
		neverRan := filepath.Join(t.TempDir(), "node")
		if err := os.MkdirAll(filepath.Join(neverRan, "private"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(neverRan, "private", "aliases"), []byte(d.Alias+": "+d.cap+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			o    tahoeMountOptions
		}{
			{"an alias that does not exist", tahoeMountOptions{Source: "tahoe:no-such-alias"}},
			{"a node that is down", tahoeMountOptions{Args: []string{"--node-url", closedLoopbackURL(t), "--timeout", "5s"}}},
			{"a node directory that never ran", tahoeMountOptions{NodeDir: neverRan}},
			{"a directory the grid does not have", tahoeMountOptions{Source: "tahoe:nowhere", Args: []string{"--capfile", noSuchDir, "--timeout", "10s"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				begin := time.Now()
				out := wantTahoeMountFails(t, d, tc.o)
				t.Logf("after %.1fs the mount says: %s", time.Since(begin).Seconds(), strings.TrimSpace(out))
				check(t, "the output of the failed mount", out)
				if tc.name == "a directory the grid does not have" {
					if leaks := capLeaks(out, other.cap); len(leaks) > 0 {
						t.Errorf("the output of the failed mount shows the capability: %s", strings.Join(leaks, "; "))
					}
				}
			})
		}
	})
}

// mutateCap returns a well-formed capability of the same kind whose keys
// name nothing on the grid: the first letters of each base32 key field
// shifted (the last one carries padding bits and stays).
func mutateCap(c string) string {
	fields := strings.Split(c, ":")
	for i, f := range fields {
		if capSecretPart.MatchString(f) {
			b := []byte(f)
			for j := range b[:8] {
				switch {
				case b[j] == 'z':
					b[j] = 'a'
				case b[j] == '7':
					b[j] = '2'
				default:
					b[j]++
				}
			}
			fields[i] = string(b)
		}
	}
	return strings.Join(fields, ":")
}
