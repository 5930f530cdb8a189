package integration

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Status is what `cloudmount status --json` prints, with the keys of
// cache.Status. It is spelled out here, not imported, because the JSON is
// the interface that users and scripts depend on.
type Status struct {
	Online        bool       `json:"online"`
	AuthFailed    bool       `json:"auth_failed"`
	OfflineSince  time.Time  `json:"offline_since"`
	LastError     string     `json:"last_error"`
	QueuedFiles   int        `json:"queued_files"`
	QueuedBytes   int64      `json:"queued_bytes"`
	QueuedChanges int        `json:"queued_changes"`
	Uploading     []Transfer `json:"uploading"`
	Failed        []Failure  `json:"failed"`
	Conflicts     []Conflict `json:"conflicts"`
	Quarantined   []string   `json:"quarantined"`
	UploadedFiles int        `json:"uploaded_files"`
	UploadedBytes int64      `json:"uploaded_bytes"`
	Cache         struct {
		FetchedBytes int64 `json:"fetched_bytes"`
	} `json:"cache"`
	raw string // the command's output, for messages
}

// Transfer is one upload in progress in Status.
type Transfer struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Done int64  `json:"done"`
}

// Failure is one failed upload in Status.
type Failure struct {
	Path      string `json:"path"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Permanent bool   `json:"permanent"`
}

// Conflict is one conflict copy in Status.
type Conflict struct {
	Path string    `json:"path"`
	Copy string    `json:"copy"`
	Time time.Time `json:"time"`
}

// String is the raw JSON, for messages.
func (s Status) String() string { return strings.TrimSpace(s.raw) }

// statusKeys must all be in the JSON: a missing key is a broken interface,
// not a zero value.
var statusKeys = []string{"online", "queued_files", "queued_bytes", "uploading", "failed", "conflicts"}

// ctl runs `cloudmount ARGS...` as the mount's user with a deadline and
// returns its combined output and exit code (-1 when it did not exit on
// its own).
func (m *Mount) ctl(timeout time.Duration, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = m.env
	cmd.SysProcAttr = m.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), -1, fmt.Errorf("%s: killed after %v", strings.Join(cmd.Args, " "), timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	if err != nil {
		return string(out), -1, err
	}
	return string(out), 0, nil
}

// syncTimeout bounds `cloudmount sync` in the tests.
const syncTimeout = 5 * time.Minute

// Sync runs `cloudmount sync MNT` and fails the test unless it exits 0
// within syncTimeout. It returns how long the sync took.
func (m *Mount) Sync(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	out, code, err := m.TrySync(syncTimeout)
	if err != nil || code != 0 {
		t.Fatalf("cloudmount sync %s: exit %d, %v\n%s\nstatus: %s", m.Dir, code, err, out, m.statusForMessage())
	}
	return time.Since(start)
}

// TrySync runs `cloudmount sync MNT` and returns its output and exit code.
func (m *Mount) TrySync(timeout time.Duration) (string, int, error) {
	return m.ctl(timeout, "sync", m.Dir)
}

// Status runs `cloudmount status --json MNT` and parses it; any failure
// fails the test.
func (m *Mount) Status(t testing.TB) Status {
	t.Helper()
	st, err := m.tryStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tryStatus is Status returning the error, for eventually.
func (m *Mount) tryStatus() (Status, error) {
	out, code, err := m.ctl(30*time.Second, "status", "--json", m.Dir)
	if err != nil || code != 0 {
		return Status{}, fmt.Errorf("cloudmount status --json %s: exit %d, %v\n%s", m.Dir, code, err, out)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		return Status{}, fmt.Errorf("cloudmount status --json: not a JSON object: %v\n%s", err, out)
	}
	for _, k := range statusKeys {
		if _, ok := keys[k]; !ok {
			return Status{}, fmt.Errorf("cloudmount status --json: no key %q in\n%s", k, out)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return Status{}, fmt.Errorf("cloudmount status --json: %v\n%s", err, out)
	}
	st.raw = out
	return st, nil
}

// statusForMessage is the status JSON, or why there is none.
func (m *Mount) statusForMessage() string {
	st, err := m.tryStatus()
	if err != nil {
		return err.Error()
	}
	return st.String()
}

// Verify runs `cloudmount verify PATH` and returns its output and exit code.
func (m *Mount) Verify(t testing.TB, p string) (string, int) {
	t.Helper()
	out, code, err := m.ctl(5*time.Minute, "verify", p)
	if err != nil {
		t.Fatalf("cloudmount verify %s: %v\n%s", p, err, out)
	}
	return out, code
}

// Kill9 kills the daemon with SIGKILL, as a crash or the OOM killer would,
// then aborts the dead FUSE connection and lazily unmounts it, so the
// mountpoint can be mounted again. The cache directory is left as the
// daemon left it.
func (m *Mount) Kill9(t testing.TB) {
	t.Helper()
	if !m.daemonAlive() {
		t.Fatalf("Kill9: daemon %d of %s is not running", m.pid, m.Dir)
	}
	if err := syscall.Kill(m.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", m.pid, err)
	}
	if !m.waitDaemonExit(30 * time.Second) {
		t.Fatalf("daemon %d still runs 30s after SIGKILL", m.pid)
	}
	// The kernel usually drops the connection with the daemon's /dev/fuse;
	// abort it where it lingers.
	if err := abortFUSE(m.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Logf("abort the FUSE connection of %s: %v", m.Dir, err)
	}
	if out, err := exec.Command("fusermount3", "-u", "-z", m.Dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u -z %s: %v\n%s", m.Dir, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := mountedAt(m.Dir); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still mounted 10s after fusermount3 -u -z", m.Dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.done = true
}

// MountAgain mounts the same server on the same mountpoint with the same
// options and cache directory, after Kill9 or Unmount.
func (m *Mount) MountAgain(t *testing.T) *Mount {
	t.Helper()
	opts := m.opts
	opts.Dir, opts.CacheDir = m.Dir, m.CacheDir
	return mountServer(t, m.Server, opts)
}

// Stop stops the server process, as a server that goes away does: every
// connection to it is refused until Start. Its data directory, logs and
// port stay.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.proc.stop(15 * time.Second); err != nil {
		t.Fatalf("stop %s: %v", s.Kind, err)
	}
	addr := mustURL(t, s.URL).Host
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still answers on %s after stop", s.Kind, addr)
	}
}

// Start starts a server stopped by Stop again with the same command line:
// the same port, data directory and logs. The cleanup registered when it
// was first started stops it again.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if !s.proc.exited() {
		t.Fatalf("Start: %s is running", s.Kind)
	}
	old := s.proc.cmd
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Env, cmd.Dir = old.Env, old.Dir
	name := "/dev/null"
	if f, ok := old.Stdout.(*os.File); ok {
		name = f.Name()
	}
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc(s.Kind, cmd)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	s.proc = p
	// The port was free a moment ago; another process may have taken it.
	if err := s.waitReady(30 * time.Second); err != nil {
		t.Fatalf("%s did not start again on %s: %v\n%s\n%s", s.Kind, s.URL, err, tailFile(s.ErrorLog, 20), tailFile(name, 20))
	}
}

// Count counts the requests with method for the slash-separated path rel
// ("/dir/file") in the access log.
func (s *Server) Count(t testing.TB, method, rel string) int {
	t.Helper()
	n := 0
	for _, r := range s.Requests(t) {
		if r.Method == method && r.Path == rel {
			n++
		}
	}
	return n
}

// WriteStream is WriteFile for content too big to hold in memory: it
// copies r to rel on the server's disk, owned by the server's user.
func (s *Server) WriteStream(t testing.TB, rel string, r io.Reader) {
	t.Helper()
	p := s.Path(rel)
	if err := s.mkdirAll(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(f, r, make([]byte, 1<<20)); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
}

// ServerMTimes returns the mtimes that cloudmount stored on the server
// for the files in the directory rel, from its dead property (nanoseconds).
// Only for servers with DeadProps.
func (s *Server) ServerMTimes(t testing.TB, rel string) map[string]time.Time {
	t.Helper()
	if !s.DeadProps {
		t.Fatalf("ServerMTimes: %s keeps no dead properties", s.Kind)
	}
	out := map[string]time.Time{}
	const body = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:cm="urn:x-cloudmount:1">` +
		`<D:prop><cm:mtime/><D:resourcetype/></D:prop></D:propfind>`
	dir := strings.TrimSuffix(rel, "/") + "/"
	code, resp, err := s.Propfind(dir, "1", body)
	if err != nil || code != http.StatusMultiStatus {
		t.Fatalf("PROPFIND %s: status %d, %v\n%s", dir, code, err, resp)
	}
	var ms struct {
		Responses []struct {
			Href      string `xml:"href"`
			Propstats []struct {
				MTime      string    `xml:"prop>mtime"`
				Collection *struct{} `xml:"prop>resourcetype>collection"`
				Status     string    `xml:"status"`
			} `xml:"propstat"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(resp), &ms); err != nil {
		t.Fatalf("PROPFIND %s: %v", dir, err)
	}
	for _, r := range ms.Responses {
		name := path.Base(strings.TrimSuffix(r.Href, "/"))
		if u, err := url.PathUnescape(name); err == nil {
			name = u
		}
		for _, ps := range r.Propstats {
			if !strings.Contains(ps.Status, " 200 ") || ps.Collection != nil || strings.TrimSpace(ps.MTime) == "" {
				continue
			}
			ns, err := strconv.ParseInt(strings.TrimSpace(ps.MTime), 10, 64)
			if err != nil {
				t.Fatalf("PROPFIND %s: mtime %q of %s", dir, ps.MTime, name)
			}
			out[name] = time.Unix(0, ns)
		}
	}
	return out
}
