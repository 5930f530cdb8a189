package webdav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/webdav/ncserver"
)

// testChunk is the chunk size of the tests: small, so that files of a few
// chunks stay small. The emulation takes chunks down to ncMinChunk.
const (
	testChunk  = 64 << 10
	ncMinChunk = 1 << 10
)

// ncFixture is the emulation behind an httptest server.
type ncFixture struct {
	srv  *ncserver.Server
	ts   *httptest.Server
	dir  string
	opts ncserver.Options
}

// startNC starts the emulation with opts (login and password set here).
func startNC(t *testing.T, opts ncserver.Options) *ncFixture {
	t.Helper()
	opts.Login, opts.Password = testUser, testPass
	if opts.MinChunk == 0 {
		opts.MinChunk = ncMinChunk
	}
	opts.Logger = quietLogger()
	dir := t.TempDir()
	srv, err := ncserver.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &ncFixture{srv: srv, ts: ts, dir: dir, opts: opts}
}

// url is the mount URL of the given form: "files" (dav/files/USERID) or
// "legacy" (remote.php/webdav).
func (f *ncFixture) url(form string) string {
	if form == "legacy" {
		return f.ts.URL + f.opts.Base + "/remote.php/webdav/"
	}
	id := f.opts.UserID
	if id == "" {
		id = f.opts.Login
	}
	return f.ts.URL + f.opts.Base + "/remote.php/dav/files/" + id + "/"
}

// connectNC is a Backend on the emulation with chunks of testChunk and a
// log kept in buf (when not nil).
func connectNC(t *testing.T, url string, buf *syncBuffer) *Backend {
	t.Helper()
	cfg := testConfig(url)
	cfg.ChunkSize = testChunk
	if buf != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	b, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// syncBuffer is a log buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// content is n pseudo-random bytes and their SHA-256.
func content(n int, seed byte) ([]byte, string) {
	data := make([]byte, n)
	x := uint32(seed) + 1
	for i := range data {
		x = x*1664525 + 1013904223
		data[i] = byte(x >> 24)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// putBytes uploads data to p with its hash and mtime.
func putBytes(ctx context.Context, b *Backend, p string, data []byte, sum string, mtime time.Time, opts backends.PutOptions) (backends.Entry, error) {
	opts.Meta.SHA256, opts.Meta.MTime = sum, &mtime
	return b.Put(ctx, p, bytes.NewReader(data), int64(len(data)), opts)
}

// wantServerFile checks the file the emulation holds.
func (f *ncFixture) wantServerFile(t *testing.T, name string, data []byte, mtime time.Time) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		gs, ws := sha256.Sum256(got), sha256.Sum256(data)
		t.Fatalf("server's %s: %d bytes, sha256 %x; want %d bytes, %x", name, len(got), gs, len(data), ws)
	}
	fi, err := os.Stat(filepath.Join(f.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime().Unix() != mtime.Unix() {
		t.Errorf("server's %s: mtime %v, want %v", name, fi.ModTime(), mtime)
	}
}

// TestNextcloudChunkedUpload: a file above the chunk size goes up in
// chunks (counted), with its mtime and SHA-256, through either URL form;
// a small file goes in one PUT; both keep their conditions.
func TestNextcloudChunkedUpload(t *testing.T) {
	for _, form := range []string{"files", "legacy"} {
		t.Run(form, func(t *testing.T) {
			// The user id differs from the login name: the legacy form
			// must ask the server for it.
			f := startNC(t, ncserver.Options{UserID: "id-of-alice", Base: "/nc"})
			var log syncBuffer
			b := connectNC(t, f.url(form), &log)
			ctx := testContext(t)
			caps, err := b.Capabilities(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(caps.Notes, "\n"), "chunked uploads (dav.chunking 1.0") {
				t.Fatalf("no note of chunked uploads: %q", caps.Notes)
			}
			data, sum := content(5*testChunk+123, 1)
			mtime := time.Unix(1600000000, 0)
			before := f.srv.Count("chunk PUT")
			e, err := putBytes(ctx, b, "big.bin", data, sum, mtime, backends.PutOptions{IfNoneMatch: true})
			if err != nil {
				t.Fatal(err)
			}
			if n := f.srv.Count("chunk PUT") - before; n != 6 {
				t.Errorf("%d chunk PUTs, want 6", n)
			}
			if f.srv.Count("assembly MOVE") != 1 {
				t.Errorf("%d assemblies, want 1", f.srv.Count("assembly MOVE"))
			}
			if e.Size != int64(len(data)) || e.Meta.SHA256 != sum {
				t.Errorf("entry %+v", e)
			}
			f.wantServerFile(t, "big.bin", data, mtime)
			if got := readAll(t, b, "big.bin", 0, -1); got != string(data) {
				t.Errorf("read back %d bytes, not the upload", len(got))
			}
			// A second create must not replace it.
			if _, err := putBytes(ctx, b, "big.bin", data, sum, mtime, backends.PutOptions{IfNoneMatch: true}); !errors.Is(err, backends.ErrExist) {
				t.Errorf("create over an existing file: %v, want ErrExist", err)
			}
			// An edit with the right version replaces it, one with a
			// stale version does not.
			data2, sum2 := content(3*testChunk, 2)
			e2, err := putBytes(ctx, b, "big.bin", data2, sum2, mtime, backends.PutOptions{IfMatch: e.Version})
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			f.wantServerFile(t, "big.bin", data2, mtime)
			if _, err := putBytes(ctx, b, "big.bin", data, sum, mtime, backends.PutOptions{IfMatch: e.Version}); !errors.Is(err, backends.ErrPrecondition) {
				t.Errorf("edit of a stale version: %v, want ErrPrecondition", err)
			}
			f.wantServerFile(t, "big.bin", data2, mtime)
			_ = e2
			small := []byte("small file\n")
			before = f.srv.Count("chunk PUT")
			putString(t, b, "small.txt", string(small))
			if n := f.srv.Count("chunk PUT") - before; n != 0 {
				t.Errorf("a small file took %d chunk PUTs", n)
			}
			if strings.Contains(log.String(), testPass) {
				t.Errorf("the log holds the password")
			}
		})
	}
}

// TestNextcloudChunkedAfter413: a server whose limit on request bodies
// refuses a plain PUT (413) gets the file in chunks below the refused size.
func TestNextcloudChunkedAfter413(t *testing.T) {
	const limit = 1 << 20
	f := startNC(t, ncserver.Options{BodyLimit: limit})
	cfg := testConfig(f.url("files"))
	cfg.ChunkSize = 4 << 20 // larger than the file: a plain PUT first
	b, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := testContext(t)
	data, sum := content(limit+limit/2, 3)
	mtime := time.Unix(1500000000, 0)
	if _, err := putBytes(ctx, b, "over.bin", data, sum, mtime, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := b.oc.refused.Load(); got != int64(len(data)) {
		t.Errorf("refused size %d: no plain PUT of %d bytes was refused first", got, len(data))
	}
	if n := f.srv.Count("chunk PUT"); n < 2 {
		t.Errorf("%d chunk PUTs, want at least 2", n)
	}
	f.wantServerFile(t, "over.bin", data, mtime)
}

// TestTooLargeWithoutChunking: a server without chunking still gives the
// clear 413 error.
func TestTooLargeWithoutChunking(t *testing.T) {
	const limit = 1 << 20
	f := startNC(t, ncserver.Options{BodyLimit: limit, Chunking: "-"})
	b := connectNC(t, f.url("files"), nil)
	data, sum := content(2*limit, 4)
	_, err := putBytes(testContext(t), b, "over.bin", data, sum, time.Unix(1500000000, 0), backends.PutOptions{})
	if !errors.Is(err, backends.ErrTooLarge) || !strings.Contains(err.Error(), "refuses uploads") {
		t.Fatalf("Put: %v, want the 413 explained", err)
	}
	if f.srv.Count("chunk PUT") != 0 {
		t.Errorf("chunks sent to a server that offers none")
	}
}

// TestNextcloudChunkedResume: an upload cut off after K chunks (a server
// fault, or the context cancelled) resumes with a new Backend (a restart
// of the daemon) and sends only the chunks the server lacks.
func TestNextcloudChunkedResume(t *testing.T) {
	const k = 3
	for _, how := range []string{"fault", "cancel"} {
		t.Run(how, func(t *testing.T) {
			var (
				mu     sync.Mutex
				cut    = true
				cancel context.CancelFunc
				chunks int
			)
			f := startNC(t, ncserver.Options{Fault: func(r *http.Request) int {
				mu.Lock()
				defer mu.Unlock()
				if !cut || r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/uploads/") {
					return 0
				}
				chunks++
				if chunks <= k {
					return 0
				}
				if how == "cancel" {
					cancel()
					return 0
				}
				return http.StatusServiceUnavailable
			}})
			data, sum := content(8*testChunk+7, 5)
			mtime := time.Unix(1700000000, 0)
			ctx, c := context.WithCancel(testContext(t))
			mu.Lock()
			cancel = c
			mu.Unlock()
			b1 := connectNC(t, f.url("files"), nil)
			if _, err := b1.Capabilities(testContext(t)); err != nil {
				t.Fatal(err)
			}
			_, err := putBytes(ctx, b1, "resume.bin", data, sum, mtime, backends.PutOptions{})
			if err == nil {
				t.Fatal("the cut-off upload succeeded")
			}
			t.Logf("first attempt: %v", err)
			_ = b1.Close()
			held := f.srv.ChunksPut()
			if len(held) < k {
				t.Fatalf("the server holds chunks %v, want at least %d", held, k)
			}
			mu.Lock()
			cut = false
			mu.Unlock()

			b2 := connectNC(t, f.url("files"), nil)
			if _, err := putBytes(testContext(t), b2, "resume.bin", data, sum, mtime, backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			sent := f.srv.ChunksPut()
			have := map[int64]bool{}
			for _, n := range held {
				have[n] = true
			}
			for _, n := range sent {
				if have[n] {
					t.Errorf("chunk %d sent again (held %v, sent %v)", n, held, sent)
				}
			}
			if len(sent)+len(have) != 9 {
				t.Errorf("held %v and sent %v: want 9 chunks in all", held, sent)
			}
			f.wantServerFile(t, "resume.bin", data, mtime)
		})
	}
}

// TestNextcloudHostileReplies: replies of status.php and the capabilities
// that are huge, malformed or of the wrong types are ignored with a log
// line and a note: the mount works, without chunked uploads.
func TestNextcloudHostileReplies(t *testing.T) {
	okStatus := []byte(`{"installed":true,"maintenance":false,"version":"28.0.4.1","versionstring":"28.0.4","productname":"Nextcloud"}`)
	for _, c := range []struct {
		name         string
		status, caps []byte
	}{
		{"huge status", append([]byte(`{"installed":true,"version":"28.0.0","x":"`), bytes.Repeat([]byte("a"), 1<<20)...), nil},
		{"status not JSON", []byte(`<html>Welcome</html>`), nil},
		{"status wrong types", []byte(`{"installed":"yes","version":28}`), nil},
		{"status control characters", []byte(`{"installed":true,"version":"28.0","productname":"Next\u001b[31mcloud"}`), nil},
		{"status two values", []byte(`{"installed":true,"version":"28.0"}{"x":1}`), nil},
		{"huge capabilities", okStatus, append([]byte(`{"ocs":{"meta":{"status":"ok"},"data":{"capabilities":{"x":"`), bytes.Repeat([]byte("b"), 2<<20)...)},
		{"capabilities wrong type", okStatus, []byte(`{"ocs":{"meta":{"status":"ok","statuscode":100},"data":{"capabilities":{"dav":{"chunking":1.0}}}}}`)},
		{"capabilities failure", okStatus, []byte(`{"ocs":{"meta":{"status":"failure","statuscode":997},"data":[]}}`)},
		{"capabilities deep", okStatus, bytes.Repeat([]byte("["), 100000)},
		{"chunking not a version", okStatus, []byte(`{"ocs":{"meta":{"status":"ok"},"data":{"capabilities":{"dav":{"chunking":"yes please"}}}}}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := startNC(t, ncserver.Options{StatusReply: c.status, CapabilitiesReply: c.caps})
			var log syncBuffer
			b := connectNC(t, f.url("files"), &log)
			caps, err := b.Capabilities(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			notes := strings.Join(caps.Notes, "\n")
			if !strings.Contains(notes, "no usable answer") {
				t.Errorf("notes do not say the reply was ignored: %q", caps.Notes)
			}
			if !strings.Contains(log.String(), "no usable answer") {
				t.Errorf("no log line: %q", log.String())
			}
			if len(notes) > 4096 || strings.Contains(notes, "\x1b") {
				t.Errorf("a note repeats the reply: %q", shorten(notes, 300))
			}
			data, sum := content(2*testChunk, 6)
			if _, err := putBytes(testContext(t), b, "f.bin", data, sum, time.Unix(1600000000, 0), backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if f.srv.Count("chunk PUT") != 0 {
				t.Errorf("chunked uploads used after a hostile reply")
			}
		})
	}
}

// TestOwnCloudNoChunks: ownCloud is recognised and logged, its chunking
// is not used.
func TestOwnCloudNoChunks(t *testing.T) {
	f := startNC(t, ncserver.Options{ProductName: "ownCloud", Version: "10.13.4.1"})
	b := connectNC(t, f.url("legacy"), nil)
	caps, err := b.Capabilities(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(caps.Notes, "\n"); !strings.Contains(notes, "ownCloud 10.13.4: chunked uploads offered (dav.chunking 1.0) but not used") {
		t.Errorf("notes: %q", caps.Notes)
	}
}

func TestParseOCURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want ocURL
	}{
		{"/remote.php/webdav/", true, ocURL{legacy: true}},
		{"/nc/remote.php/webdav/Photos/", true, ocURL{base: "/nc", legacy: true, sub: "Photos/"}},
		{"/remote.php/dav/files/alice%40example.com/a%20b/", true, ocURL{user: "alice@example.com", sub: "a%20b/"}},
		{"/remote.php/dav/files/", false, ocURL{}},
		{"/remote.php/dav/files/%2e%2e/", false, ocURL{}},
		{"/remote.php/dav/calendars/alice/", false, ocURL{}},
		{"/dav/", false, ocURL{}},
	} {
		got, ok := parseOCURL(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseOCURL(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestChunkSizeFor(t *testing.T) {
	b := &Backend{}
	b.oc.chunkSize = 10 << 20
	if b.chunkSizeFor(100<<20, false) != 0 {
		t.Fatal("chunks without a server that takes them")
	}
	b.oc.server.Store(&chunkTarget{})
	for _, c := range []struct {
		size     int64
		refused  int64
		after413 bool
		want     int64
	}{
		{10 << 20, 0, false, 0},
		{10<<20 + 1, 0, false, 10 << 20},
		{3 << 20, 0, true, 3 << 19},
		{100 << 30, 0, false, (100<<30 + maxChunks - 1) / maxChunks},
		{30 << 20, 8 << 20, false, 5 << 20},
		{6 << 20, 6 << 20, false, 5 << 20},
	} {
		b.oc.refused.Store(c.refused)
		if got := b.chunkSizeFor(c.size, c.after413); got != c.want {
			t.Errorf("chunkSizeFor(%d, refused %d, %v) = %d, want %d", c.size, c.refused, c.after413, got, c.want)
		}
	}
}

func TestPrincipalUser(t *testing.T) {
	for href, want := range map[string]string{
		"/remote.php/dav/principals/users/alice/":                     "alice",
		"https://h/nc/remote.php/dav/principals/users/a%40b.example/": "a@b.example",
		"/remote.php/dav/principals/groups/admin/":                    "",
		"/remote.php/dav/principals/users/%2F/":                       "",
		"/remote.php/dav/principals/users//":                          "",
	} {
		if got := principalUser(href); got != want {
			t.Errorf("principalUser(%q) = %q, want %q", href, got, want)
		}
	}
}
