package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// opaque hides everything of a reader but Read, so that a backend cannot
// learn its length some other way (strings.Reader's Len, WriterTo).
type opaque struct{ io.Reader }

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return buf
}

// testPutRead: Put stores content of a known size and of an unknown one
// (-1), empty files included, and replaces a longer content with a shorter
// one without leaving bytes behind; the entry it returns is the one Stat and
// List give.
func testPutRead(s *suite) {
	e := s.put("known", "hello")
	s.sameEntry("Put and Stat", e, s.stat("known"))
	s.sameEntry("Put and List", e, s.list("")["known"])
	s.hasContent("a Put of known size", "known", "hello")

	e, err := s.b.Put(s.ctx, "unknown", opaque{strings.NewReader("hello, unknown")}, -1, backends.PutOptions{})
	if err != nil {
		s.Fatalf("Put of unknown size: %v", err)
	}
	s.checkFile("Put of unknown size", e, "unknown", 14)
	s.sameEntry("Put of unknown size and Stat", e, s.stat("unknown"))
	s.hasContent("a Put of unknown size", "unknown", "hello, unknown")

	for _, size := range []int64{0, -1} {
		p := fmt.Sprintf("empty%d", size)
		e, err := s.b.Put(s.ctx, p, opaque{strings.NewReader("")}, size, backends.PutOptions{})
		if err != nil {
			s.Fatalf("Put of an empty file (size %d): %v", size, err)
		}
		s.checkFile("Put of an empty file", e, p, 0)
		s.checkFile("Stat of an empty file", s.stat(p), p, 0)
		if got, err := s.readRange(p, 0, 10); err != nil || got != "" {
			s.Errorf("Read(%q, 0, 10) of an empty file = %q, %v", p, got, err)
		}
	}

	s.put("known", "a much longer content than before")
	s.hasContent("a longer overwrite", "known", "a much longer content than before")
	e = s.put("known", "short")
	s.hasContent("a shorter overwrite", "known", "short")
	s.checkFile("Stat after a shorter overwrite", s.stat("known"), "known", 5)
	s.sameEntry("Put and Stat after an overwrite", e, s.stat("known"))
}

// testPutLarge: a few MiB, of known and of unknown size, come back intact.
func testPutLarge(s *suite) {
	data := randomBytes(3<<20 + 17)
	for _, size := range []int64{int64(len(data)), -1} {
		p := fmt.Sprintf("big%d", size)
		e, err := s.b.Put(s.ctx, p, opaque{bytes.NewReader(data)}, size, backends.PutOptions{})
		if err != nil {
			s.Fatalf("Put of %d bytes (size %d): %v", len(data), size, err)
		}
		s.checkFile("Put of a large file", e, p, int64(len(data)))
		if got := s.content(p); got != string(data) {
			s.Errorf("Read of %q: %d bytes, not the %d stored (or other bytes)", p, len(got), len(data))
		}
		off := int64(1<<20 + 3)
		if got, err := s.readRange(p, off, 4099); err != nil || got != string(data[off:off+4099]) {
			s.Errorf("Read(%q, %d, 4099): %d bytes, %v; not the stored ones", p, off, len(got), err)
		}
	}
}

// errSource is the failure of the data given to Put.
var errSource = errors.New("the disk under the staging file failed")

// failingReader yields n bytes and then fails with errSource.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errSource
	}
	k := min(len(p), f.n)
	for i := range k {
		p[i] = 'z'
	}
	f.n -= k
	return k, nil
}

// testPutSourceError: when the data to upload fails to be read, Put fails
// with an error that wraps that failure (the caller tells a local failure
// from the server's); with AtomicPut the server keeps what it had.
func testPutSourceError(s *suite) {
	s.put("old", "the old content")
	for _, size := range []int64{200 << 10, -1} {
		for _, p := range []string{"old", "new"} {
			_, err := s.b.Put(s.ctx, p, &failingReader{n: 100 << 10}, size, backends.PutOptions{})
			if !errors.Is(err, errSource) {
				s.Errorf("Put(%q, size %d) from a failing reader: %v, want an error wrapping the reader's", p, size, err)
			}
		}
		if !s.caps.AtomicPut {
			continue
		}
		s.hasContent("AtomicPut: after a failed overwrite", "old", "the old content")
		s.gone("AtomicPut: after a failed create", "new")
	}
}

// testPutSizeMismatch: a reader that gives fewer or more bytes than the size
// announced makes Put fail.
func testPutSizeMismatch(s *suite) {
	for _, c := range []struct {
		p       string
		content string
		size    int64
	}{{"short", "12345", 10}, {"long", "12345", 3}} {
		_, err := s.b.Put(s.ctx, c.p, opaque{strings.NewReader(c.content)}, c.size, backends.PutOptions{})
		if err == nil {
			s.Errorf("Put(%q) of %d bytes announced as %d succeeded; want an error", c.p, len(c.content), c.size)
		}
	}
}

// testReadRanges: Read gives length bytes from off, to the end with length
// -1, and nothing (without an error) at or after the end.
func testReadRanges(s *suite) {
	const content = "0123456789abcdefghij"
	s.put("r", content)
	for _, c := range []struct {
		off, n int64
		want   string
	}{
		{0, -1, content}, {0, 20, content}, {0, 25, content}, {0, 5, "01234"}, {5, 5, "56789"},
		{10, -1, "abcdefghij"}, {1, -1, content[1:]}, {18, 10, "ij"}, {19, 1, "j"},
		{20, -1, ""}, {20, 5, ""}, {25, 3, ""}, {25, -1, ""}, {3, 0, ""}, {0, 0, ""},
	} {
		got, err := s.readRange("r", c.off, c.n)
		if err != nil || got != c.want {
			s.Errorf("Read(off %d, length %d) = %q, %v; want %q", c.off, c.n, got, err, c.want)
		}
	}
}

// testReadCloseEarly: a reader closed before its end closes at once and
// without an error, and leaves the backend fit for more reads.
func testReadCloseEarly(s *suite) {
	data := randomBytes(4 << 20)
	if _, err := s.b.Put(s.ctx, "big", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		s.Fatalf("Put: %v", err)
	}
	for i := range 8 {
		rc, err := s.b.Read(s.ctx, "big", 0, -1)
		if err != nil {
			s.Fatalf("Read: %v", err)
		}
		if i%2 == 0 {
			buf := make([]byte, 100)
			if _, err := io.ReadFull(rc, buf); err != nil || !bytes.Equal(buf, data[:100]) {
				s.Errorf("first 100 bytes: %v", err)
			}
		}
		if err := rc.Close(); err != nil {
			s.Errorf("Close of a reader before its end: %v", err)
		}
	}
	if got := s.content("big"); got != string(data) {
		s.Errorf("Read after early closes: %d bytes, or not the stored ones", len(got))
	}
}

// testReadStreamCancel: a reader stops when the context of its Read ends,
// even in the middle of the file.
func testReadStreamCancel(s *suite) {
	data := randomBytes(8 << 20)
	if _, err := s.b.Put(s.ctx, "big", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		s.Fatalf("Put: %v", err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	rc, err := s.b.Read(ctx, "big", 0, -1)
	if err != nil {
		s.Fatalf("Read: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
		s.Fatalf("first byte: %v", err)
	}
	cancel()
	done := make(chan struct{})
	var n int64
	go func() {
		defer close(done)
		n, err = io.Copy(io.Discard, rc)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.Fatal("a reader whose context ended still blocks after 10 s")
	}
	if err == nil {
		s.Errorf("a reader whose context ended gave the remaining %d bytes without an error", n)
	}
}
