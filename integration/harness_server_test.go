package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/cloudmount/cloudmount/backends/webdav"
)

// Server is a WebDAV server that the harness started on loopback for one
// test. It is stopped by t.Cleanup, whatever the test's outcome.
type Server struct {
	// Kind is "apache", "nginx" or "rclone".
	Kind string
	// URL is the collection to mount, ending in "/", without credentials.
	URL string
	// User and Password are the basic-auth credentials the server accepts.
	User, Password string
	// Dir is the directory on disk behind URL: tests read it to see what the
	// server has, and change it to act behind the mount's back.
	Dir string
	// AccessLog has one line per request the server answered; Requests parses it.
	AccessLog string
	// ErrorLog is the server's own log, shown when the server fails.
	ErrorLog string
	// DeadProps: the server keeps PROPPATCHed dead properties. Elsewhere
	// cloudmount keeps the metadata in a file per directory
	// (metaFileName); either way it survives a mount with a fresh cache
	// directory.
	DeadProps bool

	// owner is who the server process writes files as, so that files the
	// test puts into Dir stay changeable by the server.
	uid, gid int
	proc     *proc
}

// serverStarter names a server kind and the function that starts one.
type serverStarter struct {
	name  string
	start func(t *testing.T) *Server
}

// serverStarters are the servers every behaviour test runs against.
var serverStarters = []serverStarter{
	{"apache", startApache},
	{"rclone", startRclone},
	{"nginx", startNginx},
}

// eachServer runs fn in one subtest per server kind, with a fresh server.
func eachServer(t *testing.T, fn func(t *testing.T, srv *Server)) {
	t.Helper()
	for _, s := range serverStarters {
		t.Run(s.name, func(t *testing.T) {
			fn(t, s.start(t))
		})
	}
}

// newServerBase makes the per-server temp directory, traversable by the
// server's user when the server drops root, with the credentials set.
func newServerBase(t *testing.T, kind string) *Server {
	t.Helper()
	base := t.TempDir()
	s := &Server{
		Kind:     kind,
		User:     "alice",
		Password: "pw-" + randomHex(t, 12) + "-secret",
		Dir:      filepath.Join(base, "data"),
		uid:      os.Getuid(),
		gid:      os.Getgid(),
	}
	// t.TempDir makes 0700 directories; a server that switches to www-data
	// must be able to reach its data directory through them.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// runAs makes the server's files belong to the named account (when root).
func (s *Server) runAs(t *testing.T, account string) {
	t.Helper()
	u, err := user.Lookup(account)
	if err != nil {
		need(t, "user %s: %v", account, err)
	}
	s.uid, _ = strconv.Atoi(u.Uid)
	s.gid, _ = strconv.Atoi(u.Gid)
	if err := os.Chown(s.Dir, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
}

// randomHex returns n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// closedPort returns a loopback port on which nothing listens.
func closedPort(t testing.TB) int { return freePort(t) }

// writeHtpasswd writes a bcrypt htpasswd file for the server's user, with
// the password given on stdin rather than argv.
func (s *Server) writeHtpasswd(t *testing.T, file string) {
	t.Helper()
	htpasswd := needTool(t, "htpasswd")
	cmd := exec.Command(htpasswd, "-ciB", file, s.User)
	cmd.Stdin = strings.NewReader(s.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		need(t, "htpasswd: %v\n%s", err, out)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
}

// launch starts the server's process, with stdout and stderr to the file
// out, and waits until it answers. On failure it stops the process and
// returns the error with the tails of log and out, and whether another
// port may help (the port was in use).
func (s *Server) launch(t *testing.T, name string, cmd *exec.Cmd, out *os.File, log string) (retry bool, err error) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProc(name, cmd)
	out.Close()
	if err != nil {
		need(t, "%s: %v", name, err)
	}
	s.proc = p
	if err = s.waitReady(30 * time.Second); err == nil {
		t.Cleanup(func() { s.stop(t) })
		return false, nil
	}
	_ = p.stop(10 * time.Second)
	logs := tailFile(log, 20) + "\n" + tailFile(out.Name(), 20)
	return strings.Contains(logs, "in use"), fmt.Errorf("%v\n%s", err, logs)
}

// startConfigured starts a web server whose whole configuration is tmpl
// executed into the file conf, on a free port of 127.0.0.1 (up to three
// ports: another process may take one meanwhile), and sets s.URL to its
// /dav/. data returns the template's values for a port; command returns
// the server's command line. A server that does not start stops the test
// (a failure in CI) with label in the message.
func (s *Server) startConfigured(t *testing.T, label, name, conf string, tmpl *template.Template, data func(port int) map[string]any, command func() *exec.Cmd) *Server {
	t.Helper()
	base := filepath.Dir(conf)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		s.URL = fmt.Sprintf("http://127.0.0.1:%d/dav/", port)
		f, err := os.Create(conf)
		if err != nil {
			t.Fatal(err)
		}
		err = tmpl.Execute(f, data(port))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(base, "stderr.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := command()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
		retry, err := s.launch(t, name, cmd, out, s.ErrorLog)
		if err == nil {
			return s
		}
		lastErr = err
		if !retry {
			break
		}
	}
	need(t, "%s did not start: %v", label, lastErr)
	return nil
}

// waitReady waits until the server answers an authenticated PROPFIND on its
// URL with 207, or its process ends, or the time is up.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if s.proc.exited() {
			return fmt.Errorf("%s exited: %v", s.Kind, s.proc.waitErr)
		}
		code, _, err := s.Propfind("", "0", "")
		if err == nil && code == http.StatusMultiStatus {
			return nil
		}
		last = fmt.Errorf("PROPFIND %s: status %d, %v", s.URL, code, err)
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", timeout, last)
}

// stop ends the server process and says so in the test log if it misbehaved.
func (s *Server) stop(t *testing.T) {
	if err := s.proc.stop(15 * time.Second); err != nil {
		t.Errorf("stop %s: %v", s.Kind, err)
	}
	if t.Failed() {
		t.Logf("%s error log (tail):\n%s", s.Kind, tailFile(s.ErrorLog, 30))
	}
}

// Path is the on-disk path behind the slash-separated path rel on the server.
func (s *Server) Path(rel string) string {
	return filepath.Join(s.Dir, filepath.FromSlash(rel))
}

// URLOf is the URL of the slash-separated path rel, escaped.
func (s *Server) URLOf(rel string) string {
	var segs []string
	for _, seg := range strings.Split(strings.Trim(rel, "/"), "/") {
		if seg != "" {
			segs = append(segs, url.PathEscape(seg))
		}
	}
	u := s.URL + strings.Join(segs, "/")
	if strings.HasSuffix(rel, "/") && len(segs) > 0 {
		u += "/"
	}
	return u
}

// WriteFile puts a file into the server's directory behind the mount's
// back, owned by the server's user, with mtime set unless it is zero.
func (s *Server) WriteFile(t testing.TB, rel string, data []byte, mtime time.Time) {
	t.Helper()
	p := s.Path(rel)
	if err := s.mkdirAll(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// mkdirAll makes directories under Dir owned by the server's user.
func (s *Server) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := s.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Chown(dir, s.uid, s.gid)
}

// metaFileName is the per-directory metadata file cloudmount writes on
// servers without dead properties (backends.MetaFileName).
const metaFileName = ".cloudmount-meta"

// Hidden reports whether a name in Dir is the server's own bookkeeping
// (Apache keeps dead properties in .DAV directories) and not user data.
func (s *Server) Hidden(name string) bool {
	if name == metaFileName {
		return true
	}
	return s.Kind == "apache" && (name == ".DAV" || strings.HasPrefix(name, ".davfs.tmp"))
}

// Do sends one request with the server's credentials to the path rel.
func (s *Server) Do(method, rel string, header map[string]string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, s.URLOf(rel), body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(s.User, s.Password)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return (&http.Client{Timeout: 30 * time.Second}).Do(req)
}

// Propfind sends a PROPFIND with the given depth and body (allprop when
// empty) and returns the status and the response body.
func (s *Server) Propfind(rel, depth, body string) (int, string, error) {
	if body == "" {
		body = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`
	}
	resp, err := s.Do("PROPFIND", rel, map[string]string{"Depth": depth, "Content-Type": "application/xml"}, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Quota asks the server for its RFC 4331 quota on the collection. ok is
// false when the server does not offer one.
func (s *Server) Quota() (avail, used int64, ok bool, err error) {
	const body = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>` +
		`<D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`
	code, resp, err := s.Propfind("", "0", body)
	if err != nil {
		return 0, 0, false, err
	}
	if code != http.StatusMultiStatus {
		return 0, 0, false, fmt.Errorf("PROPFIND quota: status %d", code)
	}
	var ms struct {
		Responses []struct {
			Propstats []struct {
				Avail  string `xml:"prop>quota-available-bytes"`
				Used   string `xml:"prop>quota-used-bytes"`
				Status string `xml:"status"`
			} `xml:"propstat"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(resp), &ms); err != nil {
		return 0, 0, false, fmt.Errorf("PROPFIND quota: %w", err)
	}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstats {
			if !strings.Contains(ps.Status, " 200 ") || strings.TrimSpace(ps.Avail) == "" {
				continue
			}
			a, err1 := strconv.ParseInt(strings.TrimSpace(ps.Avail), 10, 64)
			u, err2 := strconv.ParseInt(strings.TrimSpace(ps.Used), 10, 64)
			if err1 != nil || err2 != nil {
				return 0, 0, false, fmt.Errorf("PROPFIND quota: %q %q", ps.Avail, ps.Used)
			}
			return a, u, true, nil
		}
	}
	return 0, 0, false, nil
}

// Request is one request the server logged.
type Request struct {
	// Method is the HTTP method ("PUT", "PROPFIND").
	Method string
	// Path is the decoded path relative to the mounted collection, with a
	// leading "/" ("/" is the collection itself).
	Path string
	// Status is the response status, or 0 where the server does not log it (rclone).
	Status int
	// Sent and Received are the bytes of the response body and of the whole
	// request (mod_logio's %I); -1 where the server does not log them.
	Sent, Received int64
}

// isUploadOf reports whether r uploads the file p ("/dir/name"): a PUT of
// p, or, on a server without conditional PUT, a PUT of a temporary upload
// name in p's directory (the backend moves it onto p when complete).
func isUploadOf(r Request, p string) bool {
	return r.Method == "PUT" && (r.Path == p || isUploadTemp(r.Path) && path.Dir(r.Path) == path.Dir(p))
}

// isUploadTemp reports whether p is the temporary name of an upload.
func isUploadTemp(p string) bool {
	return strings.HasPrefix(path.Base(p), webdav.UploadPrefix)
}

var (
	apacheLogLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) (\S+)(?: (\d+))?$`)
	rcloneLogLine = regexp.MustCompile(`INFO\s+: (.*): ([A-Z]+) from \S+$`)
)

// Requests parses the access log: every request the server has answered so far.
func (s *Server) Requests(t testing.TB) []Request {
	t.Helper()
	f, err := os.Open(s.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prefix := strings.TrimSuffix(mustURL(t, s.URL).Path, "/")
	var reqs []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch s.Kind {
		case "apache", "nginx":
			m := apacheLogLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			p, err := url.PathUnescape(m[2])
			if err != nil {
				p = m[2]
			}
			p = strings.TrimPrefix(p, prefix)
			if p == "" {
				p = "/"
			}
			r := Request{Method: m[1], Path: p, Sent: -1, Received: -1}
			r.Status, _ = strconv.Atoi(m[3])
			if m[4] == "-" {
				r.Sent = 0
			} else if n, err := strconv.ParseInt(m[4], 10, 64); err == nil {
				r.Sent = n
			}
			if n, err := strconv.ParseInt(m[5], 10, 64); err == nil {
				r.Received = n
			}
			reqs = append(reqs, r)
		case "rclone":
			if m := rcloneLogLine.FindStringSubmatch(line); m != nil {
				reqs = append(reqs, Request{Method: m[2], Path: path.Clean("/" + m[1]), Sent: -1, Received: -1})
			}
		}
	}
	return reqs
}

// mustURL parses a URL the harness made itself.
func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// tailFile returns the last n lines of a file, for failure messages.
func tailFile(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
