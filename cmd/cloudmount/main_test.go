package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloudmount/cloudmount/mountutil"
)

// mainEnv makes the test binary run as cloudmount (see TestMain), so that
// the tests run the real command line, exit codes and daemon re-exec
// included.
const mainEnv = "CLOUDMOUNT_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cli runs cloudmount with args in a clean home directory and returns its
// output and exit code.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{mainEnv + "=1", "HOME=" + home, "GORACE=atexit_sleep_ms=0", "PATH=" + os.Getenv("PATH"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCLIUsageErrors(t *testing.T) {
	mnt := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "cloudmount: missing SOURCE and MOUNTPOINT\n"},
		{[]string{"https://h/dav/"}, "cloudmount: missing MOUNTPOINT\n"},
		{[]string{"https://h/dav/", mnt, "-o", "noauto,bogus_opt"}, "cloudmount: unknown mount option \"bogus_opt\"\n"},
		{[]string{"mount", "https://h/dav/", mnt, "--bogus"}, "cloudmount: unknown flag: --bogus\n"},
		{[]string{"https://alice:hunter2@h/dav/", mnt}, "cloudmount: do not put passwords in the URL; use the secrets file"},
		{[]string{"ftp://h/", mnt}, "cloudmount: unsupported source scheme \"ftp\""},
		{[]string{"unmount"}, "cloudmount: unmount wants one MOUNTPOINT\n"},
		{[]string{"serve", "webdav"}, "cloudmount: want: cloudmount serve webdav DIR"},
		{[]string{"version", "x"}, "cloudmount: version takes no arguments\n"},
		{[]string{"help", "nothing"}, "cloudmount: no help on \"nothing\""},
		{[]string{mountutil.DaemonVerb}, "cloudmount: not started by cloudmount"},
	}
	for _, tt := range tests {
		_, stderr, code := cli(t, nil, tt.args...)
		if code != mountutil.ExitUsage || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "Run 'cloudmount help' for usage.") {
			t.Errorf("cloudmount %q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr, tt.want)
		}
		if strings.Contains(stderr, "hunter2") {
			t.Errorf("cloudmount %q printed the password: %q", tt.args, stderr)
		}
	}
}

func TestCLIMountErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	full := filepath.Join(dir, "full")
	empty := filepath.Join(dir, "empty")
	for _, d := range []string{full, empty} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(full, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	openSecrets := filepath.Join(dir, "secrets")
	if err := os.WriteFile(openSecrets, []byte("https://h/dav/ alice pw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openSecrets, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"https://h/dav/", missing}, "cloudmount: mountpoint " + missing + " does not exist\n"},
		{[]string{"-f", "https://h/dav/", missing}, "cloudmount: mountpoint " + missing + " does not exist\n"},
		{[]string{"https://h/dav/", full}, "cloudmount: mountpoint " + full + " is not empty (use --nonempty to mount over it)\n"},
		{[]string{"https://alice@h/dav/", empty}, "cloudmount: no password for https://h/dav/ (user alice): put \"https://h/dav/ alice PASSWORD\" in ~/.config/cloudmount/secrets (mode 0600), give a password command (-o password_command=...), or set CLOUDMOUNT_PASSWORD\n"},
		{[]string{"https://alice@h/dav/", empty, "--secrets-file", openSecrets}, "chmod 600 " + openSecrets},
		{[]string{"unmount", empty}, "cloudmount: " + empty + " is not mounted\n"},
	}
	for _, tt := range tests {
		_, stderr, code := cli(t, nil, tt.args...)
		if code != mountutil.ExitMountFailed || !strings.Contains(stderr, tt.want) {
			t.Errorf("cloudmount %q: exit %d, stderr %q; want exit 1 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestCLIDaemonReportsFailure runs a mount through the background daemon
// against a server that cannot be reached: the command the user ran prints
// the daemon's error and exits 1, the daemon logged it, nothing is mounted.
func TestCLIDaemonReportsFailure(t *testing.T) {
	mnt, cacheDir := t.TempDir(), t.TempDir()
	_, stderr, code := cli(t, []string{"CLOUDMOUNT_PASSWORD=hunter2"},
		"http://alice@127.0.0.1:1/dav/", mnt, "--cache-dir", cacheDir, "-o", "timeout=5")
	if code != mountutil.ExitMountFailed || !strings.HasPrefix(stderr, "cloudmount: ") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and the daemon's error", code, stderr)
	}
	if mounted, err := mountutil.IsMounted(mnt); err != nil || mounted {
		t.Errorf("mountpoint mounted after a failure: %v %v", mounted, err)
	}
	log, err := os.ReadFile(filepath.Join(cacheDir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "mount failed") || !strings.Contains(string(log), "password from $CLOUDMOUNT_PASSWORD") {
		t.Errorf("daemon.log lacks the failure or the config:\n%s", log)
	}
	if strings.Contains(string(log)+stderr, "hunter2") {
		t.Errorf("password in the log or the output:\n%s\n%s", log, stderr)
	}
	if fi, err := os.Stat(filepath.Join(cacheDir, "daemon.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("daemon.log mode: %v %v", fi.Mode(), err)
	}
}

func TestCLIForegroundFailure(t *testing.T) {
	mnt := t.TempDir()
	_, stderr, code := cli(t, nil, "-f", "http://127.0.0.1:1/dav/", mnt, "--cache-dir", t.TempDir(), "--timeout", "5s")
	if code != mountutil.ExitMountFailed || !strings.Contains(stderr, "starting cloudmount") {
		t.Fatalf("exit %d, stderr %q; want exit 1 with the log on stderr", code, stderr)
	}
}

func TestCLIInfo(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"help"}, {"--help"}, {"help", "mount"}, {"mount", "--help"}, {"help", "unmount"}, {"help", "serve"}} {
		stdout, stderr, code := cli(t, nil, args...)
		if code != 0 || stdout == "" || stderr != "" {
			t.Errorf("cloudmount %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestCLIServe(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "webdav", dir, "--addr", "127.0.0.1:0", "--user", "alice")
	cmd.Env = []string{mainEnv + "=1", "GORACE=atexit_sleep_ms=0", "CLOUDMOUNT_PASSWORD=pw"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var url string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), " url="); ok {
			url, _, _ = strings.Cut(after, " ")
			break
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("no URL logged (got %q)", url)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	for _, tt := range []struct {
		user, pass string
		want       int
	}{{"alice", "pw", http.StatusOK}, {"alice", "wrong", http.StatusUnauthorized}} {
		req, _ := http.NewRequest("GET", url+"hello.txt", nil)
		req.SetBasicAuth(tt.user, tt.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET as %s/%s: %s, want %d", tt.user, tt.pass, resp.Status, tt.want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	done = true
	if err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0", err)
	}
}
