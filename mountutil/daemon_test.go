package mountutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testSettings is what the tests hand to the fake daemon.
type testSettings struct {
	Password string // must reach the daemon only through the pipe
	Outcome  string // "ok", "fail", "silent" (exit without a report), "sleep"
	Marker   string // where the daemon writes what it saw
}

// helperEnv makes the test binary act as the daemon (see TestMain).
const helperEnv = "MOUNTUTIL_TEST_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" && len(os.Args) > 1 && os.Args[1] == DaemonVerb {
		os.Exit(fakeDaemon())
	}
	os.Exit(m.Run())
}

// fakeDaemon is the daemon side of the handoff, as the tests drive it.
func fakeDaemon() int {
	var s testSettings
	h, err := ReceiveHandoff(&s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if s.Marker != "" {
		_ = os.WriteFile(s.Marker, []byte(s.Password), 0o600)
	}
	switch s.Outcome {
	case "fail":
		_ = h.Report(errors.New("mountpoint /x is not empty"))
		return 1
	case "silent":
		return 3
	case "sleep":
		time.Sleep(time.Minute)
		return 0
	}
	_ = h.Report(nil)
	time.Sleep(time.Minute) // serve, until the test kills it
	return 0
}

func TestDaemonArgsAndEnv(t *testing.T) {
	const pw = "hunter2-pw"
	args := DaemonArgs("cloudmount", "https://alice@host/dav/", "/home/alice/cloud")
	want := []string{"cloudmount", DaemonVerb, "https://alice@host/dav/", "/home/alice/cloud"}
	if !slices.Equal(args, want) {
		t.Errorf("DaemonArgs = %q, want %q", args, want)
	}
	env := DaemonEnv([]string{"HOME=/home/alice", PasswordEnv + "=" + pw, "PATH=/bin", PasswordEnv + "X=keep", "LANG=C"})
	wantEnv := []string{"HOME=/home/alice", "PATH=/bin", PasswordEnv + "X=keep", "LANG=C"}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("DaemonEnv = %q, want %q", env, wantEnv)
	}
	for _, s := range append(args, env...) {
		if strings.Contains(s, pw) {
			t.Errorf("password in %q", s)
		}
	}
}

// startFake starts the test binary as a daemon with the given settings.
func startFake(t *testing.T, s testSettings, timeout time.Duration) (int, error) {
	t.Helper()
	t.Setenv(helperEnv, "1")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	t.Setenv(PasswordEnv, s.Password)
	return Daemon{
		Exe:      os.Args[0],
		Args:     DaemonArgs("cloudmount-test", "https://alice@host/dav/", "/mnt"),
		Env:      DaemonEnv(os.Environ()),
		Settings: s,
		Timeout:  timeout,
		LogFile:  "/var/log/test.log",
	}.Start()
}

// reap kills and waits for a daemon this test started.
func reap(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil)
}

func TestDaemonStartOK(t *testing.T) {
	const pw = "correct horse battery"
	marker := filepath.Join(t.TempDir(), "seen")
	pid, err := startFake(t, testSettings{Password: pw, Outcome: "ok", Marker: marker}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reap(pid) })
	if got, _ := os.ReadFile(marker); string(got) != pw {
		t.Errorf("the daemon got password %q over the pipe, want %q", got, pw)
	}
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(pw)) || bytes.Contains(b, []byte(PasswordEnv+"=")) {
			t.Errorf("/proc/%d/%s holds the password: %q", pid, f, b)
		}
		if f == "cmdline" && !bytes.HasPrefix(b, []byte("cloudmount-test\x00"+DaemonVerb+"\x00")) {
			t.Errorf("cmdline = %q", b)
		}
	}
	if pids := DaemonPIDs("/mnt"); !slices.Contains(pids, pid) {
		t.Errorf("DaemonPIDs(/mnt) = %v, want it to hold %d", pids, pid)
	}
	if pids := DaemonPIDs("/elsewhere"); slices.Contains(pids, pid) {
		t.Errorf("DaemonPIDs(/elsewhere) = %v holds %d", pids, pid)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("daemon session = %d, %v; want its own (%d)", sid, err, pid)
	}
	for fd := 0; fd <= 2; fd++ {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); target != "/dev/null" {
			t.Errorf("daemon fd %d -> %q, want /dev/null", fd, target)
		}
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("daemon cwd = %q, want /", cwd)
	}
}

func TestDaemonStartFails(t *testing.T) {
	tests := []struct {
		outcome string
		timeout time.Duration
		want    string
	}{
		{"fail", 30 * time.Second, "mountpoint /x is not empty"},
		{"silent", 30 * time.Second, "the daemon exited without reporting (exit status 3); see /var/log/test.log"},
		{"sleep", 300 * time.Millisecond, "the daemon did not report within 300ms; see /var/log/test.log"},
	}
	for _, tt := range tests {
		t.Run(tt.outcome, func(t *testing.T) {
			pid, err := startFake(t, testSettings{Password: "pw", Outcome: tt.outcome}, tt.timeout)
			if err == nil {
				reap(pid)
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
		})
	}
}

func TestReceiveHandoffWithoutPipe(t *testing.T) {
	// The test process has no settings pipe on fd 3 (or fd 3 is something
	// else): the hidden daemon verb run by hand must fail cleanly.
	var st unix.Stat_t
	if unix.Fstat(settingsFD, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
		t.Skip("fd 3 is a pipe in this test process")
	}
	var s testSettings
	if _, err := ReceiveHandoff(&s); err == nil || !strings.Contains(err.Error(), "not started by cloudmount") {
		t.Errorf("ReceiveHandoff = %v", err)
	}
}

func TestDaemonDoesNotInheritStrayDescriptors(t *testing.T) {
	// A descriptor without close-on-exec, as a shell pipe would be.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	pid, err := startFake(t, testSettings{Password: "pw", Outcome: "ok"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reap(pid) })
	want, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", w.Fd()))
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); target == want {
			t.Errorf("the daemon inherited the stray pipe as fd %s", e.Name())
		}
	}
}
