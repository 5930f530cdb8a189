package webdav

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// hangOn serves h behind basic auth, but makes requests matching match hang
// (until the client gives up or the test ends), after sending the headers
// when headers is set.
func hangOn(t *testing.T, h http.Handler, match func(*http.Request) bool, headers bool) string {
	release := make(chan struct{})
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			h.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if headers {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return ts.URL + "/"
}

func shortTimeout(t *testing.T, url string) *Backend {
	cfg := testConfig(url)
	cfg.Timeout = 300 * time.Millisecond
	b, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestCallTimeout(t *testing.T) {
	b := shortTimeout(t, hangOn(t, memHandler("/"), func(r *http.Request) bool { return r.URL.Path == "/slow" }, false))
	start := time.Now()
	_, err := b.Stat(testContext(t), "slow")
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Stat on a hanging server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stat took %v", d)
	}
}

func TestReadStall(t *testing.T) {
	b := shortTimeout(t, hangOn(t, memHandler("/"), func(r *http.Request) bool { return r.Method == "GET" }, true))
	rc, err := b.Read(testContext(t), "f", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	data, err := io.ReadAll(rc)
	if string(data) != "partial" || !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("read %q, %v; want the partial data and ErrUnavailable", data, err)
	}
	if err != nil && !strings.Contains(err.Error(), "stopped sending") {
		t.Errorf("error %q does not say the transfer stalled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stall detected after %v", d)
	}
}

// TestReadContext: a Read stream ends with its context.
func TestReadContext(t *testing.T) {
	b := connect(t, hangOn(t, memHandler("/"), func(r *http.Request) bool { return r.Method == "GET" }, true))
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := b.Read(ctx, "f", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

// TestPutStall: an upload whose server stops reading fails after the
// timeout instead of hanging; a slow but moving upload is fine.
func TestPutStall(t *testing.T) {
	release := make(chan struct{})
	mem := memHandler("/")
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && r.URL.Path == "/stuck" {
			<-release // never reads the body
			return
		}
		mem.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(release) })
	b := shortTimeout(t, ts.URL+"/")
	b.caps = &backends.Capabilities{} // no probe needed
	const size = 64 << 20             // more than socket buffers hold
	start := time.Now()
	_, err := b.Put(testContext(t), "stuck", io.LimitReader(zeros{}, size), size, backends.PutOptions{})
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Put to a stuck server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stall detected after %v", d)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestIgnoredRange: a server that answers 200 to a ranged GET still gives
// the right bytes.
func TestIgnoredRange(t *testing.T) {
	mem := memHandler("/")
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Range")
		mem.ServeHTTP(w, r)
	}))
	b := connect(t, ts.URL+"/")
	putString(t, b, "r", "0123456789")
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, "0123456789"}, {3, 4, "3456"}, {8, -1, "89"}, {12, 5, ""}} {
		if got := readAll(t, b, "r", c.off, c.n); got != c.want {
			t.Errorf("Read(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
		}
	}
}

// TestPutSourceError: a failing source is reported as such, not as an
// unreachable server.
func TestPutSourceError(t *testing.T) {
	b := connect(t, serve(t, memHandler("/")).URL+"/")
	boom := errors.New("disk on fire")
	src := io.MultiReader(strings.NewReader("some data"), errReader{boom})
	_, err := b.Put(testContext(t), "f", src, 100, backends.PutOptions{})
	if !errors.Is(err, boom) || errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Put with failing source: %v", err)
	}
	_, err = b.Put(testContext(t), "g", strings.NewReader("short"), 100, backends.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "short of the declared size") {
		t.Errorf("Put with short source: %v", err)
	}
}

// TestPutLongerSource: a source with more bytes than the size declared
// fails the upload, and the server never receives a whole body to commit:
// the last bytes are held back until the source is known to end.
func TestPutLongerSource(t *testing.T) {
	type got struct {
		n   int
		err error
	}
	bodies := make(chan got, 1)
	mem := memHandler("/")
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/long") {
			data, err := io.ReadAll(r.Body)
			bodies <- got{len(data), err}
			return
		}
		mem.ServeHTTP(w, r)
	}))
	b := connect(t, ts.URL+"/")
	b.caps = &backends.Capabilities{} // no probe needed
	for _, size := range []int64{0, 3, 64 << 10, 1<<20 + 5} {
		src := io.LimitReader(zeros{}, size+1)
		_, err := b.Put(testContext(t), "long", struct{ io.Reader }{src}, size, backends.PutOptions{})
		if err == nil || !strings.Contains(err.Error(), "more than the declared size") {
			t.Errorf("Put of %d bytes announced as %d: %v, want an error saying the source is longer", size+1, size, err)
		}
		if size == 0 {
			continue // nothing is sent at all
		}
		select {
		case g := <-bodies:
			if g.err == nil {
				t.Errorf("size %d: the server received a whole body of %d bytes", size, g.n)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("size %d: the server never saw the upload end", size)
		}
	}
	select {
	case g := <-bodies:
		t.Errorf("an upload of an empty file with a longer source reached the server (%d bytes)", g.n)
	default:
	}
}

// TestPutLocked: a PUT refused with 423 Locked before any of its body was
// read is sent again after a pause (the server may still hold the lock of
// an aborted upload of the same file); a lock that stays fails the Put
// with ErrPermission, the source read by no attempt.
func TestPutLocked(t *testing.T) {
	var mu sync.Mutex
	refusals := map[string]int{"/busy": 2, "/locked": 1 << 30}
	puts := map[string]int{}
	mem := memHandler("/")
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := refusals[r.URL.Path]
		if r.Method == "PUT" {
			puts[r.URL.Path]++
			refusals[r.URL.Path] = n - 1
		}
		mu.Unlock()
		if r.Method == "PUT" && n > 0 {
			http.Error(w, "locked", http.StatusLocked)
			return
		}
		mem.ServeHTTP(w, r)
	}))
	b := connect(t, ts.URL+"/")
	b.caps = &backends.Capabilities{} // no probe needed
	ctx := testContext(t)
	if _, err := b.Put(ctx, "busy", struct{ io.Reader }{strings.NewReader("data")}, -1, backends.PutOptions{}); err != nil {
		t.Errorf("Put of a file locked for two attempts: %v", err)
	}
	if got := readAll(t, b, "busy", 0, -1); got != "data" {
		t.Errorf("after the retries the file holds %q", got)
	}
	src := &countingReader{r: strings.NewReader("data")}
	_, err := b.Put(ctx, "locked", src, -1, backends.PutOptions{})
	if !errors.Is(err, backends.ErrLocked) || httpCode(err) != http.StatusLocked {
		t.Errorf("Put of a file that stays locked: %v, want ErrLocked (HTTP 423)", err)
	}
	if src.n != 0 {
		t.Errorf("the refused attempts read %d bytes of the source", src.n)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"/busy": 3, "/locked": len(lockedWaits) + 1}; !maps.Equal(puts, want) {
		t.Errorf("PUTs sent %v, want %v", puts, want)
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestConcurrent: one Backend used from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	b := connect(t, serve(t, memHandler("/")).URL+"/")
	ctx := testContext(t)
	if err := b.Mkdir(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() {
			p := "c/file " + strings.Repeat("x", i)
			body := strings.Repeat("y", 1000+i)
			if _, err := b.Put(ctx, p, strings.NewReader(body), int64(len(body)), backends.PutOptions{}); err != nil {
				errs <- err
				return
			}
			rc, err := b.Read(ctx, p, int64(i), -1)
			if err != nil {
				errs <- err
				return
			}
			data, err := io.ReadAll(rc)
			_ = rc.Close()
			if err == nil && len(data) != 1000 {
				err = errors.New("wrong length")
			}
			if err == nil {
				_, err = b.List(ctx, "c")
			}
			errs <- err
		}()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if ls, err := b.List(ctx, "c"); err != nil || len(ls) != 16 {
		t.Errorf("List: %d entries, %v", len(ls), err)
	}
}
