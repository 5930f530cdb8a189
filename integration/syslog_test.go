package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonLogsToTheSystemLog mounts in the background without
// --log-file where journald's syslog socket exists: the daemon logs there
// (syslog format, tag cloudmount, severities), keeps no daemon.log and
// sends what bypasses its log to crash.log. The machine need not run
// journald: the mount runs in a private mount namespace (unshare -m) in
// which /run/systemd/journal/dev-log is a socket the test listens on.
func TestDaemonLogsToTheSystemLog(t *testing.T) {
	needRoot(t)
	needMountable(t)
	unshare := needTool(t, "unshare")
	nsenter := needTool(t, "nsenter")
	srv := startEmbedded(t)
	tmp := t.TempDir()
	sock := filepath.Join(tmp, "dev-log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 10000)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	var got []string
	// waitFor reads messages until one contains want.
	waitFor := func(want string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("the system log socket closed; got:\n%s", strings.Join(got, "\n"))
				}
				got = append(got, m)
				if strings.Contains(m, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no message with %q in the system log; got:\n%s", want, strings.Join(got, "\n"))
			}
		}
	}

	mnt, cacheDir := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "cache")
	for _, d := range []string{mnt, cacheDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const script = `set -e
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/journal
touch /run/systemd/journal/dev-log
mount --bind "$1" /run/systemd/journal/dev-log
shift
exec "$@"`
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", sock,
		binPath, "mount", srv.URL, mnt, "--cache-dir", cacheDir, "--user", srv.User, "-v")
	cmd.Env = append(os.Environ(), "CLOUDMOUNT_PASSWORD="+srv.Password)
	out, err := cmd.CombinedOutput()
	pids := daemonsOf(mnt)
	for _, pid := range pids {
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	}
	if err != nil || len(pids) != 1 {
		t.Fatalf("mount in a private namespace: %v, daemons %v\n%s", err, pids, out)
	}
	if !strings.Contains(string(out), "log the journal (journalctl -t cloudmount)") {
		t.Errorf("the mount command does not say where the daemon logs: %s", out)
	}
	pid := pids[0]
	waitFor("mounted")

	// The mount (in the namespace) works.
	write := exec.Command(nsenter, "-t", strconv.Itoa(pid), "-m", "sh", "-c", "echo logged > "+shellQuote(filepath.Join(mnt, "f.txt")))
	if out, err := write.CombinedOutput(); err != nil {
		t.Fatalf("write in the mount: %v\n%s", err, out)
	}
	wantServerFile(t, srv, "f.txt", []byte("logged\n"))

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("unmounted")
	for _, line := range got {
		if !strings.Contains(line, " cloudmount["+strconv.Itoa(pid)+"]: ") {
			t.Errorf("a message without the tag cloudmount[%d]: %q", pid, line)
		}
	}
	var start, debug bool
	for _, line := range got {
		start = start || strings.HasPrefix(line, "<30>") && strings.Contains(line, "]: starting cloudmount ")
		debug = debug || strings.HasPrefix(line, "<31>")
	}
	if !start || !debug {
		t.Errorf("want the start at info level (<30>) and debug messages (<31>, -v); got:\n%s", strings.Join(got, "\n"))
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "daemon.log")); err == nil {
		t.Error("daemon.log made although the daemon logs to the system log")
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "crash.log")); err != nil {
		t.Errorf("crash.log for what bypasses the log: %v", err)
	}
}
