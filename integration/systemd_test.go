package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
)

// The systemd examples in docs/systemd. systemd itself need not run here:
// the tests read the unit files and run what systemd would run.
const (
	systemdDocs      = "../docs/systemd"
	installedBinary  = "/usr/local/bin/cloudmount"
	exampleInstance  = "cloud"
	exampleMountUnit = "home-alice-cloud.mount"
	exampleAutomount = "home-alice-cloud.automount"
)

// unitFile is a parsed systemd unit: section → key → values in order
// (ExecStop= may be given more than once).
type unitFile map[string]map[string][]string

// parseUnit reads a unit file as systemd does: [Section] headers,
// Key=Value lines, '#' and ';' comments, a trailing backslash continues a
// line.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	var pending string
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(pending + line)
		pending = ""
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s line %d: not Key=Value in a section: %q", path, n+1, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// one returns the single value of a key, failing the test otherwise.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s= has %d values, want one", section, key, len(v))
	}
	return v[0]
}

// expandSpecifiers replaces the unit specifiers the examples use.
func expandSpecifiers(t *testing.T, s string, spec map[byte]string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			t.Fatalf("%q ends in %%", s)
		}
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := spec[s[i]]
		if !ok {
			t.Fatalf("%q: specifier %%%c is not one the test knows", s, s[i])
		}
		b.WriteString(v)
	}
	return b.String()
}

// parseEnvFile reads an EnvironmentFile= of KEY=VALUE lines.
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not KEY=VALUE: %q", path, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}

// execArgv turns an Exec*= line into its argv as systemd does: the
// prefixes ("-": failure ignored) come off, the line is split into words,
// a word "${NAME}" becomes one argument, a word "$NAME" the value split at
// blanks. The installed binary's path becomes the one built for the test.
func execArgv(t *testing.T, line string, env map[string]string) (argv []string, ignoreFailure bool) {
	t.Helper()
	for len(line) > 0 && strings.ContainsRune("-@:+!", rune(line[0])) {
		ignoreFailure = ignoreFailure || line[0] == '-'
		line = line[1:]
	}
	words, err := mountutil.SplitCommand(line)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	whole := regexp.MustCompile(`^\$\{(\w+)\}$`)
	split := regexp.MustCompile(`^\$(\w+)$`)
	for _, w := range words {
		if m := whole.FindStringSubmatch(w); m != nil {
			argv = append(argv, env[m[1]])
		} else if m := split.FindStringSubmatch(w); m != nil {
			argv = append(argv, strings.Fields(env[m[1]])...)
		} else if strings.Contains(w, "$") {
			t.Fatalf("%q: the test does not expand %q", line, w)
		} else {
			argv = append(argv, w)
		}
	}
	if len(argv) == 0 || argv[0] != installedBinary {
		t.Fatalf("%q does not run %s", line, installedBinary)
	}
	argv[0] = binPath
	return argv, ignoreFailure
}

// systemdEscapePath is systemd-escape --path: the name a mount unit for
// path must have.
func systemdEscapePath(p string) string {
	p = strings.Trim(filepath.Clean(p), "/")
	if p == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.'):
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TestSystemdUserUnit runs docs/systemd/cloudmount@.service as systemd
// would for the instance "cloud", without systemd: the example settings
// (docs/systemd/cloud.conf, with this test's server and mountpoint) are the
// EnvironmentFile under %E, the password is in the default secrets file
// under $XDG_CONFIG_HOME, ExecStart runs with $NOTIFY_SOCKET (Type=notify)
// and must say READY=1 only once the mount is there, and the ExecStop
// lines, run in order, leave the file on the server, the mount gone and
// the main process ended.
func TestSystemdUserUnit(t *testing.T) {
	needMountable(t)
	unit := parseUnit(t, filepath.Join(systemdDocs, "cloudmount@.service"))
	if got := unit.one(t, "Service", "Type"); got != "notify" {
		t.Fatalf("Type=%s, want notify (cloudmount -f tells systemd when it is mounted)", got)
	}
	srv := startEmbedded(t)
	tmp := t.TempDir()
	config, home, mnt := filepath.Join(tmp, "config"), filepath.Join(tmp, "home"), filepath.Join(tmp, "mnt")
	for _, d := range []string{config, home, mnt, filepath.Join(config, "cloudmount")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	spec := map[byte]string{'i': exampleInstance, 'I': exampleInstance, 'E': config, 'h': home}

	envFile := expandSpecifiers(t, unit.one(t, "Service", "EnvironmentFile"), spec)
	if want := filepath.Join(config, "cloudmount", exampleInstance+".conf"); envFile != want {
		t.Errorf("EnvironmentFile is %s, want %s (as the comments say)", envFile, want)
	}
	conf := parseEnvFile(t, filepath.Join(systemdDocs, exampleInstance+".conf"))
	for _, k := range []string{"SOURCE", "MOUNTPOINT", "OPTIONS"} {
		if _, ok := conf[k]; !ok {
			t.Fatalf("the example settings lack %s", k)
		}
	}
	source := strings.Replace(srv.URL, "://", "://"+srv.User+"@", 1)
	settings := fmt.Sprintf("SOURCE=%s\nMOUNTPOINT=%s\nOPTIONS=%s\n", source, mnt, conf["OPTIONS"])
	if err := os.WriteFile(envFile, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSecrets(t, filepath.Join(config, "cloudmount", "secrets"), 0o600, srv.URL, srv.User, srv.Password)
	vars := parseEnvFile(t, envFile)

	notify := filepath.Join(tmp, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	waitState := func(want string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case s := <-states:
				if slices.Contains(strings.Split(s, "\n"), want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from the service in 60s", want)
			}
		}
	}

	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CLOUDMOUNT_PASSWORD=") || strings.HasPrefix(kv, "NOTIFY_SOCKET=")
	})
	env = append(env, "XDG_CONFIG_HOME="+config, "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
	rememberMountDir(mnt)
	argv, _ := execArgv(t, unit.one(t, "Service", "ExecStart"), vars)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(slices.Clone(env), "NOTIFY_SOCKET="+notify)
	journal := filepath.Join(tmp, "journal.log")
	out, err := os.Create(journal)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	main, err := startProc("cloudmount@cloud", cmd)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, ok := mountedAt(mnt); ok {
			exec.Command("fusermount3", "-uz", mnt).Run()
		}
		main.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("the service's output (tail):\n%s", tailFile(journal, 30))
		}
	})
	waitState("READY=1")
	if e, ok := mountedAt(mnt); !ok || e.FSType != "fuse.cloudmount" {
		t.Fatalf("READY=1 but %s is not a fuse.cloudmount mount: %+v", mnt, e)
	}
	if err := os.WriteFile(filepath.Join(mnt, "from-the-unit.txt"), []byte("unit\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, line := range unit["Service"]["ExecStop"] {
		argv, ignore := execArgv(t, line, vars)
		stop := exec.Command(argv[0], argv[1:]...)
		stop.Env = env
		if out, err := stop.CombinedOutput(); err != nil && !ignore {
			t.Fatalf("ExecStop=%s: %v\n%s", line, err, out)
		}
	}
	// The sync of the first ExecStop put the file on the server.
	if got, err := os.ReadFile(srv.Path("from-the-unit.txt")); err != nil || string(got) != "unit\n" {
		t.Errorf("after ExecStop the server has %q, %v", got, err)
	}
	if _, ok := mountedAt(mnt); ok {
		t.Errorf("%s is still mounted after ExecStop", mnt)
	}
	waitState("STOPPING=1")
	// What systemd does next: SIGTERM to what is left.
	if !main.wait(5 * time.Second) {
		main.cmd.Process.Signal(syscall.SIGTERM)
	}
	if !main.wait(30 * time.Second) {
		t.Fatal("the service's main process is still running after SIGTERM")
	}
	if code := main.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the service's main process exited with %d, want 0", code)
	}
}

// TestSystemdMountUnits checks docs/systemd's mount and automount units
// and their fstab form, and runs what mount(8) would run for them through
// mount.fuse3 (cloudmount WHAT WHERE -o OPTIONS) with a mountpoint and
// server of the test, then umount WHERE, which is how systemd stops a mount
// unit. The automount itself (autofs) needs systemd and is not run. The
// password is given in CLOUDMOUNT_PASSWORD instead of
// /etc/cloudmount/secrets, which a test must not write.
func TestSystemdMountUnits(t *testing.T) {
	needRoot(t)
	needMountable(t)
	umount := needTool(t, "umount")
	mount := parseUnit(t, filepath.Join(systemdDocs, exampleMountUnit))
	auto := parseUnit(t, filepath.Join(systemdDocs, exampleAutomount))
	where := mount.one(t, "Mount", "Where")
	if name := systemdEscapePath(where); name+".mount" != exampleMountUnit || name+".automount" != exampleAutomount {
		t.Errorf("units for %s must be named %s.mount and %s.automount", where, name, name)
	}
	if got := auto.one(t, "Automount", "Where"); got != where {
		t.Errorf("the automount's Where=%s, the mount's %s", got, where)
	}
	if got := mount.one(t, "Mount", "Type"); got != "fuse.cloudmount" {
		t.Errorf("Type=%s, want fuse.cloudmount", got)
	}
	what, options := mount.one(t, "Mount", "What"), mount.one(t, "Mount", "Options")

	fstab, err := os.ReadFile(filepath.Join(systemdDocs, "fstab.example"))
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, l := range strings.Split(string(fstab), "\n") {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			fields = f
		}
	}
	if len(fields) != 6 || fields[0] != what || fields[1] != where || fields[2] != "fuse.cloudmount" {
		t.Fatalf("the fstab line %q does not match the mount unit (%s %s fuse.cloudmount)", fields, what, where)
	}
	fstabOpts := strings.Split(fields[3], ",")
	for _, o := range append(strings.Split(options, ","), "x-systemd.automount", "noauto") {
		if !slices.Contains(fstabOpts, o) {
			t.Errorf("the fstab line lacks option %s", o)
		}
	}

	srv := startEmbedded(t)
	if err := os.WriteFile(srv.Path("on-the-server.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(srv.Path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	source := strings.Replace(srv.URL, "://", "://"+srv.User+"@", 1)
	for _, tc := range []struct{ name, opts string }{{"mount unit", options}, {"fstab line", fields[3]}} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			mnt := filepath.Join(tmp, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			rememberMountDir(mnt)
			t.Cleanup(func() {
				if _, ok := mountedAt(mnt); ok {
					exec.Command("fusermount3", "-uz", mnt).Run()
				}
			})
			cmd := exec.Command(binPath, source, mnt, "-o", tc.opts)
			cmd.Env = append(os.Environ(), "CLOUDMOUNT_PASSWORD="+srv.Password, "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cloudmount %s %s -o %s: %v\n%s", source, mnt, tc.opts, err, out)
			}
			e, ok := mountedAt(mnt)
			if !ok || e.FSType != "fuse.cloudmount" || !strings.Contains(e.Options, "allow_other") {
				t.Fatalf("mounted: %v %+v; want fuse.cloudmount with allow_other", ok, e)
			}
			for _, c := range []struct {
				name string
				mode os.FileMode
			}{{"on-the-server.txt", 0o640}, {"dir", 0o750}} {
				fi, err := os.Stat(filepath.Join(mnt, c.name))
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if st.Uid != 1000 || st.Gid != 1000 || fi.Mode().Perm() != c.mode {
					t.Errorf("%s: %d:%d %04o, want 1000:1000 %04o (uid, gid, file_mode, dir_mode)", c.name, st.Uid, st.Gid, fi.Mode().Perm(), c.mode)
				}
			}
			if out, err := exec.Command(umount, mnt).CombinedOutput(); err != nil {
				t.Fatalf("umount %s: %v\n%s", mnt, err, out)
			}
			eventually(t, 30*time.Second, func() error {
				if _, ok := mountedAt(mnt); ok {
					return fmt.Errorf("%s still mounted after umount", mnt)
				}
				return nil
			})
			waitDaemonsGone(t, filepath.Join(tmp, "cache", "cloudmount"))
		})
	}
}
