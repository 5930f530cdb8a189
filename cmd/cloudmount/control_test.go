package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	cmfs "github.com/cloudmount/cloudmount/fs"
	"github.com/cloudmount/cloudmount/mountutil"
)

// fakeController stands in for a mount behind the control socket.
type fakeController struct {
	mu     sync.Mutex // protects the fields below
	status cache.Status
	// steps are the statuses Sync reports, in order; the last one stays.
	steps   []cache.Status
	syncErr error
	// block makes Sync wait for its context; syncEnded then gets its error.
	block     bool
	syncEnded chan error
	report    cmfs.VerifyReport
	verifyErr error
	verified  []string
}

// Status returns the status set last.
func (c *fakeController) Status() cache.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Sync reports the steps, then blocks or returns syncErr.
func (c *fakeController) Sync(ctx context.Context, progress func(cache.Status)) error {
	c.mu.Lock()
	steps, err, block := c.steps, c.syncErr, c.block
	c.mu.Unlock()
	for _, st := range steps {
		c.mu.Lock()
		c.status = st
		c.mu.Unlock()
		progress(st)
	}
	if block {
		<-ctx.Done()
		c.syncEnded <- ctx.Err()
		return ctx.Err()
	}
	return err
}

// Verify records the path and returns the set report after some progress.
func (c *fakeController) Verify(ctx context.Context, p string, progress func(cmfs.VerifyProgress)) (cmfs.VerifyReport, error) {
	c.mu.Lock()
	c.verified = append(c.verified, p)
	rep, err := c.report, c.verifyErr
	c.mu.Unlock()
	progress(cmfs.VerifyProgress{FilesTotal: 2, BytesTotal: 10})
	progress(cmfs.VerifyProgress{FilesDone: 1, FilesTotal: 2, BytesDone: 4, BytesTotal: 10, Path: "a"})
	progress(cmfs.VerifyProgress{FilesDone: 2, FilesTotal: 2, BytesDone: 10, BytesTotal: 10})
	return rep, err
}

// controlEnv points the socket directories and the mount table at
// temporary ones and returns the socket directories (the first is the
// preferred one) and a mountpoint.
func controlEnv(t *testing.T) (dirs []string, mountpoint string) {
	t.Helper()
	// Socket paths are limited to 107 bytes: keep the base short.
	base, err := os.MkdirTemp("", "cmt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dirs = []string{filepath.Join(base, "run"), filepath.Join(base, "tmp")}
	oldDirs, oldInfo, oldEvery := socketDirs, mountinfoPath, progressLineEvery
	socketDirs = func(int) []string { return dirs }
	mountinfoPath = filepath.Join(base, "mountinfo")
	writeMountinfo(t, mountinfoPath)
	progressLineEvery = 0
	t.Cleanup(func() { socketDirs, mountinfoPath, progressLineEvery = oldDirs, oldInfo, oldEvery })
	mountpoint = filepath.Join(base, "mnt")
	if err := os.Mkdir(mountpoint, 0o755); err != nil {
		t.Fatal(err)
	}
	return dirs, mountpoint
}

// writeMountinfo writes a mount table with the root file system and the
// given cloudmount mounts.
func writeMountinfo(t *testing.T, file string, cloudmounts ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
	for i, mp := range cloudmounts {
		fmt.Fprintf(&b, "%d 22 0:%d / %s rw,nosuid,nodev,relatime shared:%d - fuse.cloudmount https://u@h/dav/ rw,user_id=%d,group_id=0\n",
			40+i, 50+i, strings.ReplaceAll(mp, " ", `\040`), 10+i, os.Geteuid())
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveFake starts a control socket for c at mountpoint, stopped at the end
// of the test.
func serveFake(t *testing.T, mountpoint string, c controller) func() {
	t.Helper()
	stop, err := startControl(mountpoint, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("startControl: %v", err)
	}
	t.Cleanup(stop)
	return stop
}

// runCLI runs the command line in this process.
func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// sampleStatus is a status with every field set.
func sampleStatus() cache.Status {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	return cache.Status{
		Online: false, OfflineSince: at, LastError: "dial tcp: connection refused",
		QueuedFiles: 2, QueuedBytes: 3 << 19,
		Uploading: []cache.Transfer{{Path: "a.bin", Size: 1 << 20, Done: 1 << 19, Rate: 2.5 * (1 << 20), Started: at}},
		Failed: []cache.Failure{
			{Path: "locked.txt", Attempts: 3, LastError: "403 Forbidden", Permanent: true},
			{Path: "later.txt", Attempts: 1, LastError: "503", NextTry: time.Now().Add(time.Hour).Truncate(time.Second).UTC()},
		},
		Conflicts:     []cache.Conflict{{Path: "doc.txt", Copy: "doc (conflicted copy 2024-05-06 070809 host).txt", Time: at}},
		Quarantined:   []string{"rec-000012"},
		UploadedFiles: 7, UploadedBytes: 12345,
		Cache: cache.BlockStats{Limit: 1 << 30, Used: 3 << 20, Blocks: 3, Hits: 3, Misses: 1},
	}
}

func TestControlSocketPermissions(t *testing.T) {
	dirs, mp := controlEnv(t)
	stop := serveFake(t, mp, &fakeController{})
	sock := filepath.Join(dirs[0], controlSocketName(mp))
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s has mode %v, want a socket with 0600", sock, fi.Mode())
	}
	di, err := os.Lstat(dirs[0])
	if err != nil || !di.IsDir() || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v, want 0700", di.Mode(), err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dirs[0], ".*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	stop()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket still there after stop: %v", err)
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	_, mp := controlEnv(t)
	want := sampleStatus()
	serveFake(t, mp, &fakeController{status: want})
	stdout, stderr, code := runCLI("status", mp, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got statusOutput
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if got.Mountpoint != mp || got.Status == nil || got.Error != "" {
		t.Fatalf("output %+v", got)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got.Status)
	if !bytes.Equal(wantJSON, gotJSON) {
		t.Fatalf("status changed on the way:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	for _, field := range []string{`"mountpoint"`, `"online"`, `"queued_files"`, `"queued_bytes"`, `"uploading"`, `"rate"`, `"failed"`, `"permanent"`, `"last_error"`, `"conflicts"`} {
		if !strings.Contains(stdout, field) {
			t.Errorf("no %s in %s", field, stdout)
		}
	}
}

func TestStatusHuman(t *testing.T) {
	_, mp := controlEnv(t)
	serveFake(t, mp, &fakeController{status: sampleStatus()})
	// Any path in the mount names it.
	if err := os.Mkdir(filepath.Join(mp, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI("status", filepath.Join(mp, "sub"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		mp + "\n",
		"offline since 2024-05-06", "dial tcp: connection refused",
		"queued: 2 files, 1.5 MiB",
		"uploading: a.bin  512.0 KiB of 1.0 MiB (50%) at 2.5 MiB/s",
		"failed permanently: locked.txt: 403 Forbidden (3 attempts",
		"failed: later.txt: 503 (1 attempt, next try in 59m",
		"conflict: doc.txt changed on the server; the local version is in doc (conflicted copy",
		"quarantined, not uploaded: rec-000012",
		"uploaded since the mount: 7 files, 12.1 KiB",
		"block cache: 3.0 MiB of 1.0 GiB, 75% of reads from disk",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
}

// TestStatusAuthFailed: a mount whose server refuses the credentials says
// so, and what to do, in status and in sync's progress; not "online".
func TestStatusAuthFailed(t *testing.T) {
	_, mp := controlEnv(t)
	at := time.Now().Add(-3 * time.Minute)
	st := cache.Status{AuthFailed: true, OfflineSince: at, LastError: `put a.txt: the server refused user "alice" (wrong user name or password)`,
		QueuedFiles: 1, QueuedBytes: 5, Uploading: []cache.Transfer{}, Conflicts: []cache.Conflict{}, Quarantined: []string{},
		Failed: []cache.Failure{{Path: "a.txt", Attempts: 2, LastError: "authentication failed", NextTry: time.Now().Add(time.Minute)}}}
	serveFake(t, mp, &fakeController{status: st})
	stdout, stderr, code := runCLI("status", mp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"  authentication failed since " + at.Local().Format("2006-01-02 15:04:05") + " (3m",
		`the server refused user "alice"`,
		"check them (the secrets file, netrc or password command)",
		"retried until the server accepts them",
		"failed: a.txt: authentication failed (2 attempts, next try in",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "online") || strings.Contains(stdout, "failed permanently") {
		t.Errorf("status of refused credentials:\n%s", stdout)
	}
	stdout, _, _ = runCLI("status", "--json", mp)
	if !strings.Contains(stdout, `"auth_failed": true`) || !strings.Contains(stdout, `"online": false`) {
		t.Errorf("JSON status: %s", stdout)
	}
	_, _, desc, line := syncProgress(st, st)
	if !strings.Contains(desc, "authentication failed") || !strings.Contains(line, "the server refuses the credentials") ||
		!strings.Contains(line, "wrong user name or password") {
		t.Errorf("sync progress: %q %q", desc, line)
	}
}

func TestStatusEveryMount(t *testing.T) {
	_, mp := controlEnv(t)
	other := filepath.Join(filepath.Dir(mp), "dead mount")
	writeMountinfo(t, mountinfoPath, mp, other)
	serveFake(t, mp, &fakeController{status: cache.Status{Online: true, QueuedFiles: 1, QueuedBytes: 10}})
	t.Chdir(t.TempDir())
	stdout, _, code := runCLI("status", "--json")
	if code != mountutil.ExitMountFailed {
		t.Fatalf("exit %d, want 1: one daemon does not answer", code)
	}
	var got []statusOutput
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if len(got) != 2 || got[0].Mountpoint != mp || got[0].Status == nil || got[0].QueuedFiles != 1 ||
		got[1].Mountpoint != other || got[1].Status != nil || !strings.Contains(got[1].Error, "no daemon answers for "+other) ||
		got[0].Source != "https://u@h/dav/" {
		t.Fatalf("output %s", stdout)
	}
	// In a mount, status means that mount.
	t.Chdir(mp)
	stdout, stderr, code := runCLI("status")
	if code != 0 || !strings.HasPrefix(stdout, mp+"  (https://u@h/dav/)\n  online\n") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
}

func TestSync(t *testing.T) {
	busy := cache.Status{Online: true, QueuedFiles: 2, QueuedBytes: 3 << 20,
		Uploading: []cache.Transfer{{Path: "big.iso", Size: 2 << 20, Done: 1 << 20, Rate: 1 << 20}}}
	half := cache.Status{Online: true, QueuedFiles: 1, QueuedBytes: 1 << 20, UploadedFiles: 1, UploadedBytes: 2 << 20}
	done := cache.Status{Online: true, UploadedFiles: 2, UploadedBytes: 3 << 20}
	failed := cache.Status{Online: true, QueuedFiles: 1, QueuedBytes: 5,
		Failed: []cache.Failure{{Path: "ro/file", Attempts: 1, LastError: "permission denied by the server", Permanent: true}}}
	tests := []struct {
		name     string
		c        *fakeController
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{name: "done", c: &fakeController{status: busy, steps: []cache.Status{busy, half, done}},
			stdout: []string{"everything queued is on the server (2 files, 3.0 MiB uploaded)"},
			stderr: []string{"sync: 2 files (3.0 MiB) to upload; uploading big.iso at 1.0 MiB/s", "sync: 1 file (1.0 MiB) to upload"}},
		{name: "quiet", c: &fakeController{status: busy, steps: []cache.Status{busy, done}}, args: []string{"-q"}, noStdout: true},
		{name: "offline", c: &fakeController{steps: []cache.Status{{QueuedFiles: 1, QueuedBytes: 1, LastError: "no route to host"}, done}},
			stderr: []string{"sync: 1 file (1 B) to upload; the server cannot be reached: no route to host"}},
		{name: "permanent failure", c: &fakeController{status: busy, steps: []cache.Status{busy, failed},
			syncErr: errors.New("1 upload(s) failed and will not be retried in this mount (the data stays in the journal):\n  ro/file: permission denied by the server")},
			code: 1, stderr: []string{"ro/file failed: permission denied by the server", "cloudmount: sync ", "1 upload(s) failed", "  ro/file: permission denied by the server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, mp := controlEnv(t)
			serveFake(t, mp, tc.c)
			stdout, stderr, code := runCLI(append([]string{"sync", mp}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("no %q in stdout:\n%s", want, stdout)
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("no %q in stderr:\n%s", want, stderr)
				}
			}
			if tc.noStdout && stdout+stderr != "" {
				t.Errorf("quiet sync printed %q %q", stdout, stderr)
			}
		})
	}
}

func TestSyncTimeoutCancelsOnTheDaemon(t *testing.T) {
	_, mp := controlEnv(t)
	c := &fakeController{status: cache.Status{QueuedFiles: 4, QueuedBytes: 2048}, block: true, syncEnded: make(chan error, 1)}
	serveFake(t, mp, c)
	start := time.Now()
	_, stderr, code := runCLI("sync", mp, "--timeout", "300ms", "-q")
	if code != 1 || !strings.Contains(stderr, "not done after 300ms; 4 files (2.0 KiB) still queued") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	select {
	case err := <-c.syncEnded:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("daemon's sync ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon's sync still runs after the client gave up")
	}
}

func TestSyncWhileDaemonStops(t *testing.T) {
	_, mp := controlEnv(t)
	c := &fakeController{status: cache.Status{QueuedFiles: 1}, block: true, syncEnded: make(chan error, 1)}
	stop := serveFake(t, mp, c)
	go func() {
		<-time.After(200 * time.Millisecond)
		stop()
	}()
	_, stderr, code := runCLI("sync", mp, "-q")
	if code != 1 || !strings.Contains(stderr, "the daemon is stopping") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestVerifyCommand(t *testing.T) {
	bad := cmfs.VerifyReport{Root: "d", Checked: 3, Bytes: 30, Matched: 1, NoHash: []string{"d/new"},
		Mismatches: []cmfs.VerifyMismatch{{Path: "d/bad", Size: 10, Want: strings.Repeat("a", 64), Got: strings.Repeat("b", 64)}},
		Errors:     []cmfs.VerifyError{{Path: "d/gone", Err: "read d/gone: permission denied by the server"}}}
	good := cmfs.VerifyReport{Root: "d", Checked: 2, Bytes: 20, Matched: 2}
	tests := []struct {
		name   string
		report cmfs.VerifyReport
		err    error
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "all match", report: good, stdout: []string{"2 files (20 B) read from the server", "2 files with a known hash: all match"}},
		{name: "mismatch", report: bad, code: 1,
			stdout: []string{"MISMATCH {mp}/d/bad (10 B): the mount believes sha256 aaaa", "ERROR {mp}/d/gone: read d/gone: permission denied",
				"1 file had no known hash", "{mp}/d/new"},
			stderr: []string{"1 file differs from the known hash, 1 could not be verified"}},
		{name: "json", report: bad, args: []string{"--json"}, code: 1, stdout: []string{`"ok": false`, `"mismatches": [`, `"mountpoint": "{mp}"`}},
		{name: "root missing", err: errors.New("verify d: no such file or directory"), code: 1,
			stderr: []string{"cloudmount: verify {mp}/d: verify d: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, mp := controlEnv(t)
			c := &fakeController{report: tc.report, verifyErr: tc.err}
			serveFake(t, mp, c)
			os.Mkdir(filepath.Join(mp, "d"), 0o755)
			stdout, stderr, code := runCLI(append([]string{"verify", filepath.Join(mp, "d")}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if want = strings.ReplaceAll(want, "{mp}", mp); !strings.Contains(stdout, want) {
					t.Errorf("no %q in stdout:\n%s", want, stdout)
				}
			}
			for _, want := range tc.stderr {
				if want = strings.ReplaceAll(want, "{mp}", mp); !strings.Contains(stderr, want) {
					t.Errorf("no %q in stderr:\n%s", want, stderr)
				}
			}
			if len(c.verified) != 1 || c.verified[0] != "d" {
				t.Fatalf("daemon asked to verify %q, want [d]", c.verified)
			}
			if tc.err == nil && !strings.Contains(stderr, "verify: 1 of 2 files, 4 B of 10 B; reading a") {
				t.Errorf("no progress in stderr:\n%s", stderr)
			}
		})
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dirs, mp := controlEnv(t)
	if err := ensureSocketDir(dirs[0], os.Geteuid()); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dirs[0], controlSocketName(mp))
	// A daemon that crashed leaves its socket file behind.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	_, stderr, code := runCLI("status", mp)
	if code != 1 || !strings.Contains(stderr, "no daemon answers for "+mp) || !strings.Contains(stderr, "refuses connections") {
		t.Fatalf("stale socket: exit %d: %s", code, stderr)
	}
	serveFake(t, mp, &fakeController{status: cache.Status{Online: true}})
	if _, stderr, code := runCLI("status", mp); code != 0 {
		t.Fatalf("after start: exit %d: %s", code, stderr)
	}
}

func TestLiveSocketTakenOver(t *testing.T) {
	dirs, mp := controlEnv(t)
	stopOld := serveFake(t, mp, &fakeController{status: cache.Status{QueuedFiles: 1}})
	serveFake(t, mp, &fakeController{status: cache.Status{QueuedFiles: 2}})
	// The old daemon stops after the new one took the path: the new
	// socket stays.
	stopOld()
	if _, err := os.Lstat(filepath.Join(dirs[0], controlSocketName(mp))); err != nil {
		t.Fatalf("the new daemon's socket is gone: %v", err)
	}
	stdout, stderr, code := runCLI("status", mp, "--json")
	if code != 0 || !strings.Contains(stdout, `"queued_files": 2`) {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
}

func TestNoDaemon(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dirs []string, mp string)
		args  func(mp string) []string
		want  string
	}{
		{name: "plain directory", args: func(mp string) []string { return []string{"status", mp} },
			want: "cloudmount: {mp} is not a cloudmount mount\n"},
		{name: "sync of a plain directory", args: func(mp string) []string { return []string{"sync", mp} },
			want: "cloudmount: {mp} is not a cloudmount mount\n"},
		{name: "verify outside any mount", args: func(mp string) []string { return []string{"verify", filepath.Join(mp, "x")} },
			want: "cloudmount: {mp}/x is not a cloudmount mount\n"},
		{name: "mounted without a socket",
			setup: func(t *testing.T, _ []string, mp string) { writeMountinfo(t, mountinfoPath, mp) },
			args:  func(mp string) []string { return []string{"sync", mp} },
			want:  "cloudmount: no daemon answers for {mp}: it has no control socket"},
		{name: "unsafe socket directory",
			setup: func(t *testing.T, dirs []string, mp string) {
				serveFake(t, mp, &fakeController{})
				if err := os.Chmod(dirs[0], 0o755); err != nil {
					t.Fatal(err)
				}
			},
			args: func(mp string) []string { return []string{"status", mp} },
			want: "has mode 0755, not 0700; refusing it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dirs, mp := controlEnv(t)
			if tc.setup != nil {
				tc.setup(t, dirs, mp)
			}
			_, stderr, code := runCLI(tc.args(mp)...)
			want := strings.ReplaceAll(tc.want, "{mp}", mp)
			if code != 1 || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	dirs, mp := controlEnv(t)
	serveFake(t, mp, &fakeController{})
	sock := filepath.Join(dirs[0], controlSocketName(mp))
	for _, req := range []string{"not json\n", `{"op":"format-disk"}` + "\n"} {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, req)
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		var r controlReply
		if err != nil || json.Unmarshal([]byte(line), &r) != nil || r.Type != replyResult || r.Error == "" {
			t.Fatalf("request %q: answer %q %v", req, line, err)
		}
	}
}
