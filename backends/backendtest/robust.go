package backendtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// promptly is how soon a call with a context that has ended must return.
const promptly = 2 * time.Second

// testReadOnly: with Capabilities.ReadOnly, every change fails with
// ErrReadOnly or ErrPermission (or ErrNotFound for a missing source) and
// changes nothing; reading works.
func testReadOnly(s *suite) {
	if !s.caps.ReadOnly {
		s.Skip("not read-only")
	}
	refused := []error{backends.ErrReadOnly, backends.ErrPermission}
	orMissing := append([]error{backends.ErrNotFound}, refused...)
	_, err := s.tryPut("new", "x", backends.PutOptions{})
	s.wantErr("Put on a read-only backend", err, refused...)
	s.gone("after a refused Put", "new")
	s.wantErr("Mkdir on a read-only backend", s.b.Mkdir(s.ctx, "newdir"), refused...)
	s.gone("after a refused Mkdir", "newdir")
	s.wantErr("Remove of the root on a read-only backend", s.b.Remove(s.ctx, ""), refused...)
	s.wantErr("Remove on a read-only backend", s.b.Remove(s.ctx, "missing"), orMissing...)
	s.wantErr("Rename on a read-only backend", s.b.Rename(s.ctx, "missing", "x", true), orMissing...)
	if ms, ok := s.b.(backends.MetaSetter); ok {
		mode := modeA
		_, err := ms.SetMeta(s.ctx, "", backends.Meta{Mode: &mode}, "")
		s.wantErr("SetMeta on a read-only backend", err, refused...)
	}
	if s.caps.Symlinks {
		_, err := s.b.(backends.Symlinker).Symlink(s.ctx, "t", "link")
		s.wantErr("Symlink on a read-only backend", err, refused...)
		s.gone("after a refused Symlink", "link")
	}
	if s.caps.HardLinks {
		_, err := s.b.(backends.Linker).Link(s.ctx, "missing", "link")
		s.wantErr("Link on a read-only backend", err, orMissing...)
	}
	if e := s.stat(""); !e.IsDir {
		s.Errorf("the root of a read-only backend: %s", show(e))
	}
	s.wantNames("the root of a read-only backend", "")
}

// testConcurrent: Puts, Reads, Stats and Lists of different files from
// several goroutines at once each see their own data (run it with -race).
func testConcurrent(s *suite) {
	const workers = 8
	shared := randomBytes(1 << 20)
	if _, err := s.b.Put(s.ctx, "shared", bytes.NewReader(shared), int64(len(shared)), backends.PutOptions{}); err != nil {
		s.Fatalf("Put: %v", err)
	}
	readAll := func(p string, off, length int64) ([]byte, error) {
		rc, err := s.b.Read(s.ctx, p, off, length)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := fmt.Sprintf("w%d", w)
			for round := range 3 {
				data := randomBytes(64<<10 + w*4099 + round)
				e, err := s.b.Put(s.ctx, p, bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
				if err != nil {
					s.Errorf("%s round %d: Put: %v", p, round, err)
					return
				}
				if e.Size != int64(len(data)) {
					s.Errorf("%s round %d: Put returned size %d, want %d", p, round, e.Size, len(data))
				}
				got, err := readAll(p, 0, -1)
				if err != nil || !bytes.Equal(got, data) {
					s.Errorf("%s round %d: Read gave %d bytes (%v), not the %d stored", p, round, len(got), err, len(data))
				}
				if st, err := s.b.Stat(s.ctx, p); err != nil || st.Size != int64(len(data)) || st.Version != e.Version {
					s.Errorf("%s round %d: Stat = %s, %v; want the entry Put returned, %s", p, round, show(st), err, show(e))
				}
				if _, err := s.b.List(s.ctx, ""); err != nil {
					s.Errorf("%s round %d: List: %v", p, round, err)
				}
			}
		})
		wg.Go(func() {
			for round := range 3 {
				off := int64((w*131071 + round*65537) % len(shared))
				got, err := readAll("shared", off, 50000)
				want := shared[off:min(off+50000, int64(len(shared)))]
				if err != nil || !bytes.Equal(got, want) {
					s.Errorf("a shared read at %d: %d bytes (%v), not the %d stored there", off, len(got), err, len(want))
				}
			}
		})
	}
	wg.Wait()
	names := s.names("")
	if len(names) != workers+1 {
		s.Errorf("after concurrent Puts the root holds %q", names)
	}
}

// testCancelledContext: every call with a context that has already ended
// fails promptly with an error matching context.Canceled (or
// context.DeadlineExceeded for a deadline that passed), and changes
// nothing.
func testCancelledContext(s *suite) {
	s.put("f", "x")
	s.mkdir("d")
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	mode := modeA
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Stat", func(ctx context.Context) error { _, err := s.b.Stat(ctx, "f"); return err }},
		{"List", func(ctx context.Context) error { _, err := s.b.List(ctx, ""); return err }},
		{"Read", func(ctx context.Context) error {
			rc, err := s.b.Read(ctx, "f", 0, -1)
			if err == nil {
				defer rc.Close()
				_, err = io.ReadAll(rc)
			}
			return err
		}},
		{"Put", func(ctx context.Context) error {
			_, err := s.b.Put(ctx, "new", strings.NewReader("x"), 1, backends.PutOptions{})
			return err
		}},
		{"Put over a file", func(ctx context.Context) error {
			_, err := s.b.Put(ctx, "f", strings.NewReader("y"), 1, backends.PutOptions{})
			return err
		}},
		{"Mkdir", func(ctx context.Context) error { return s.b.Mkdir(ctx, "newdir") }},
		{"Remove", func(ctx context.Context) error { return s.b.Remove(ctx, "f") }},
		{"Remove of a directory", func(ctx context.Context) error { return s.b.Remove(ctx, "d") }},
		{"Rename", func(ctx context.Context) error { return s.b.Rename(ctx, "f", "g", false) }},
	}
	if ms, ok := s.b.(backends.MetaSetter); ok {
		calls = append(calls, struct {
			name string
			call func(ctx context.Context) error
		}{"SetMeta", func(ctx context.Context) error {
			_, err := ms.SetMeta(ctx, "f", backends.Meta{Mode: &mode}, "")
			return err
		}})
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call(ctx)
		if took := time.Since(start); took > promptly {
			s.Errorf("%s with a cancelled context took %v", c.name, took)
		}
		s.wantErr(c.name+" with a cancelled context", err, context.Canceled)
	}
	s.gone("after a cancelled Put", "new")
	s.gone("after a cancelled Mkdir", "newdir")
	s.gone("after a cancelled Rename", "g")
	s.hasContent("after cancelled calls", "f", "x")
	if e := s.stat("d"); !e.IsDir {
		s.Errorf("after a cancelled Remove the directory is %s", show(e))
	}
	if st := s.stat("f"); s.caps.Mode.Stored && st.Meta.Mode != nil && *st.Meta.Mode == modeA {
		s.Errorf("a cancelled SetMeta stored its mode")
	}

	past, cancel2 := context.WithDeadline(s.ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range calls[:4] {
		start := time.Now()
		err := c.call(past)
		if took := time.Since(start); took > promptly {
			s.Errorf("%s with a deadline passed took %v", c.name, took)
		}
		s.wantErr(c.name+" with a deadline passed", err, context.DeadlineExceeded)
	}
	s.gone("after a Put past its deadline", "new")
}
