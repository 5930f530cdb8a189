package webdav_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/hostile"
)

// syncBuffer is a log destination the test reads back.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// connect opens a backend on srv (in Normal mode) that logs into the
// returned buffer.
func connect(t *testing.T, srv *hostile.Server, tweak func(*webdav.Config)) (*webdav.Backend, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := webdav.Config{URL: srv.URL, User: hostile.User, Password: hostile.Password, Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if tweak != nil {
		tweak(&cfg)
	}
	b, err := webdav.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, logs
}

// heapGrowth is how far the heap rose above what it was before fn ran: in
// use (HeapInuse, which holds garbage not yet collected, of the test
// server's side too) and live (what the last garbage collection kept).
type heapGrowth struct{ inuse, live uint64 }

func (h heapGrowth) String() string {
	return fmt.Sprintf("heap in use +%.1f MiB, live +%.1f MiB", float64(h.inuse)/(1<<20), float64(h.live)/(1<<20))
}

// peakHeap runs fn while sampling the heap, and returns its peak growth.
func peakHeap(fn func()) heapGrowth {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() (inuse, live uint64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		metrics.Read(sample)
		return ms.HeapInuse, sample[0].Value.Uint64()
	}
	runtime.GC()
	baseInuse, baseLive := read()
	var peak heapGrowth
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			inuse, live := read()
			if inuse > baseInuse {
				peak.inuse = max(peak.inuse, inuse-baseInuse)
			}
			if live > baseLive {
				peak.live = max(peak.live, live-baseLive)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return peak
}

// A listing reply without end, or with a million entries, is an error
// naming the server and the bound it went over, and the daemon's heap
// stays small while it is read. The cases with the default bounds read
// 100,000 entries, which takes half a minute under the race detector: they
// run without it (make unit does so).
func TestHostileListingIsBounded(t *testing.T) {
	const heapBound = 64 << 20
	small := func(c *webdav.Config) { c.MaxListingEntries = 5000 }
	for _, c := range []struct {
		mode     hostile.Mode
		tweak    func(*webdav.Config)
		want     string // in the error
		defaults bool
	}{
		{hostile.EndlessListing, nil, "holds more than 100000 entries", true},
		{hostile.MillionEntries, nil, "holds more than 100000 entries", true},
		{hostile.EndlessListing, small, "holds more than 5000 entries", false},
		{hostile.MillionEntries, small, "holds more than 5000 entries", false},
		{hostile.EndlessElement, nil, "has an element of more than 1048576 bytes", false},
		{hostile.EndlessPadding, func(c *webdav.Config) { c.MaxListingBytes = 4 << 20 }, "is larger than 4194304 bytes", false},
	} {
		name := string(c.mode)
		if c.defaults {
			name += "/default-bounds"
		}
		t.Run(name, func(t *testing.T) {
			if c.defaults && raceDetector {
				t.Skip("reads 100,000 entries: run without -race")
			}
			srv := hostile.New(t)
			srv.WriteFile(t, "a.txt", []byte("a"))
			b, _ := connect(t, srv, c.tweak)
			srv.SetMode(c.mode)
			var err error
			var entries []backends.Entry
			start := time.Now()
			grew := peakHeap(func() { entries, err = b.List(t.Context(), "") })
			t.Logf("FIGURE: %s: %v in %v; error: %v", c.mode, grew, time.Since(start).Round(time.Millisecond), err)
			if err == nil {
				t.Fatalf("listing accepted with %d entries", len(entries))
			}
			host := strings.TrimPrefix(strings.TrimSuffix(srv.URL, "/dav/"), "http://")
			msg := err.Error()
			if !errors.Is(err, backends.ErrProtocol) || errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("error %q is not a malformed reply (or is taken for offline)", msg)
			}
			var le *webdav.LimitError
			if !errors.As(err, &le) || !strings.Contains(msg, c.want) || !strings.Contains(msg, host) {
				t.Errorf("error %q does not name the server %s and the limit (%s)", msg, host, c.want)
			}
			if strings.Contains(msg, hostile.Password) {
				t.Errorf("error %q holds the password", msg)
			}
			if grew.inuse > heapBound {
				t.Errorf("%v while the reply was read, want in use under %d MiB", grew, heapBound>>20)
			}
			// The server is fine again: so is the listing.
			srv.SetMode(hostile.Normal)
			if es, err := b.List(t.Context(), ""); err != nil || len(es) != 1 || es[0].Name != "a.txt" {
				t.Errorf("after the fix: %+v, %v", es, err)
			}
		})
	}
}

// A listing keeps only the direct children of the listed collection;
// hrefs elsewhere are skipped with a warning, at most a few lines of them.
func TestHostileListingKeepsOnlyChildren(t *testing.T) {
	srv := hostile.New(t)
	srv.WriteFile(t, "a.txt", []byte("a"))
	srv.WriteFile(t, "sub/b.txt", []byte("b"))
	b, logs := connect(t, srv, nil)
	srv.SetMode(hostile.NonChildren)
	es, err := b.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(es); got != "a.txt sub" {
		t.Errorf("listing holds %q, want only the children a.txt and sub", got)
	}
	out := logs.String()
	if n := strings.Count(out, "listing entry skipped"); n != 5 {
		t.Errorf("%d skipped entries logged one by one, want 5:\n%s", n, out)
	}
	if !strings.Contains(out, "listing entries skipped") || !strings.Contains(out, "more=3") {
		t.Errorf("no summary of the other 3 skipped entries:\n%s", out)
	}
	for _, want := range []string{"another server", "not a direct child", "encoded slash", "the name .."} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning says %q:\n%s", want, out)
		}
	}
}

// Names that a local filesystem cannot hold are skipped with a warning
// naming them escaped; a name with control characters is kept, and no log
// line carries them raw.
func TestHostileListingBadNames(t *testing.T) {
	srv := hostile.New(t)
	srv.WriteFile(t, "a.txt", []byte("a"))
	b, logs := connect(t, srv, nil)
	srv.SetMode(hostile.BadNames)
	es, err := b.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := url.PathUnescape(hostile.ControlName)
	if got, want := names(es), "a.txt "+ctl; got != want {
		t.Errorf("listing holds %q, want %q", got, want)
	}
	out := logs.String()
	for _, want := range []string{"256 bytes", "NUL byte", "encoded slash"} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning says %q:\n%s", want, out)
		}
	}
	// A read of the kept name fails (the server has no such file) with an
	// error that carries the name escaped.
	_, err = b.Stat(t.Context(), ctl)
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\n") || !strings.Contains(err.Error(), `ctl\x1b[31mred\nforged=1.txt`) {
		t.Errorf("error %q does not carry the name escaped", err)
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "forged=1.txt\n") {
		t.Errorf("a log line carries a raw control character:\n%q", out)
	}
}

func names(es []backends.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Name)
	}
	slicesSort(s)
	return strings.Join(s, " ")
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// A reply whose length or range disagrees with what was asked or with the
// file's size is an error that quotes the server, never data.
func TestHostileReadIsChecked(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 300)
	size := int64(len(data))
	for _, c := range []struct {
		mode        hostile.Mode
		off, length int64
		want        string
	}{
		{hostile.ShortBody, 0, size, "a whole-file reply of 2900 bytes"},
		{hostile.ShortBody, 0, -1, "a whole-file reply of 2900 bytes"},
		{hostile.LongBody, 1000, 1000, "a whole-file reply of 3100 bytes"},
		{hostile.ShortRange, 1000, 1000, "Content-Length 900"},
		{hostile.ShortRange, 0, size, "Content-Length 2900"},
		{hostile.WrongTotal, 0, size, `gives the file 4000 bytes`},
		{hostile.WrongTotal, 1000, 1000, `gives the file 4000 bytes`},
		{hostile.WrongStart, 1000, 1000, `is not the range asked`},
	} {
		t.Run(string(c.mode), func(t *testing.T) {
			srv := hostile.New(t)
			srv.WriteFile(t, "f", data)
			b, _ := connect(t, srv, nil)
			srv.SetMode(c.mode)
			rc, err := b.ReadSized(t.Context(), "f", c.off, c.length, size)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if err == nil {
				t.Fatalf("read %d bytes without error", len(got))
			}
			host := strings.TrimPrefix(strings.TrimSuffix(srv.URL, "/dav/"), "http://")
			if !errors.Is(err, backends.ErrProtocol) || errors.Is(err, backends.ErrUnavailable) ||
				!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), host) {
				t.Errorf("error %q: want a malformed reply of %s saying %q", err, host, c.want)
			}
			srv.SetMode(hostile.Normal)
			rc, err = b.ReadSized(t.Context(), "f", c.off, c.length, size)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(rc)
			rc.Close()
			end := size
			if c.length > 0 {
				end = c.off + c.length
			}
			if err != nil || !bytes.Equal(got, data[c.off:end]) {
				t.Errorf("after the fix: %d bytes, %v", len(got), err)
			}
		})
	}
}

// Without a known size, a reply is still checked against itself and the
// range asked.
func TestHostileReadUnsized(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefghij"), 300)
	for _, mode := range []hostile.Mode{hostile.ShortRange, hostile.WrongStart} {
		srv := hostile.New(t)
		srv.WriteFile(t, "f", data)
		b, _ := connect(t, srv, nil)
		srv.SetMode(mode)
		rc, err := b.Read(t.Context(), "f", 1000, 1000)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, backends.ErrProtocol) {
			t.Errorf("%s: %v, want a malformed reply", mode, err)
		}
	}
}

// A redirect is not followed: the error names the target and says why,
// is not taken for "offline", and the target hears nothing.
func TestHostileRedirect(t *testing.T) {
	for _, c := range []struct {
		mode hostile.Mode
		call func(b *webdav.Backend, ctx context.Context) error
	}{
		{hostile.RedirectPut, func(b *webdav.Backend, ctx context.Context) error {
			_, err := b.Put(ctx, "new.txt", strings.NewReader("hello"), 5, backends.PutOptions{IfNoneMatch: true})
			return err
		}},
		{hostile.RedirectPut, func(b *webdav.Backend, ctx context.Context) error {
			big := bytes.Repeat([]byte("x"), 3<<20) // sent with Expect: 100-continue
			_, err := b.Put(ctx, "big.bin", bytes.NewReader(big), int64(len(big)), backends.PutOptions{})
			return err
		}},
		{hostile.RedirectPut, func(b *webdav.Backend, ctx context.Context) error {
			// unknown size: sent chunked
			_, err := b.Put(ctx, "stream.bin", io.MultiReader(strings.NewReader("abc")), -1, backends.PutOptions{})
			return err
		}},
		{hostile.RedirectGet, func(b *webdav.Backend, ctx context.Context) error {
			rc, err := b.Read(ctx, "a.txt", 0, -1)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{hostile.RedirectPropfind, func(b *webdav.Backend, ctx context.Context) error {
			_, err := b.List(ctx, "")
			return err
		}},
		{hostile.RedirectPropfind, func(b *webdav.Backend, ctx context.Context) error {
			_, err := b.Stat(ctx, "a.txt")
			return err
		}},
	} {
		t.Run(string(c.mode), func(t *testing.T) {
			srv := hostile.New(t)
			srv.WriteFile(t, "a.txt", []byte("a"))
			b, _ := connect(t, srv, nil)
			if _, err := b.Capabilities(t.Context()); err != nil {
				t.Fatal(err)
			}
			srv.SetMode(c.mode)
			err := c.call(b, t.Context())
			var re *webdav.RedirectError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a RedirectError", err)
			}
			msg := err.Error()
			for _, want := range []string{srv.Target, "does not follow redirects", "credentials", "final URL"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if errors.Is(err, backends.ErrUnavailable) || strings.Contains(msg, "consumed") {
				t.Errorf("error %q is taken for offline or speaks of the body", msg)
			}
			if n, _ := srv.TargetHits(); n != 0 {
				t.Errorf("the redirect target got %d requests", n)
			}
		})
	}
}

// A server that does not answer in time is told apart from one that
// cannot be reached.
func TestSlowServerIsNotUnreachable(t *testing.T) {
	srv := hostile.New(t)
	b, _ := connect(t, srv, func(c *webdav.Config) { c.Timeout = 300 * time.Millisecond })
	srv.SetListingDelay(1500 * time.Millisecond)
	_, err := b.List(t.Context(), "")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "did not answer within 300ms") || strings.Contains(msg, "unreachable") ||
		!errors.Is(err, backends.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q: want \"did not answer within 300ms\", matching ErrUnavailable and DeadlineExceeded", msg)
	}
}
