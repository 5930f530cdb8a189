package tahoe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// linkGate holds the first set_children the fake node gets until it is
// opened, and counts them all.
type linkGate struct {
	calls  atomic.Int32
	held   chan struct{} // closed once the first call is held
	open   chan struct{}
	closed sync.Once
}

func holdFirstLink(t *testing.T, f *fakeNode) *linkGate {
	g := &linkGate{held: make(chan struct{}), open: make(chan struct{})}
	f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("t") != "set_children" {
			return false
		}
		if g.calls.Add(1) == 1 {
			close(g.held)
			<-g.open
		}
		return false
	})
	t.Cleanup(g.release)
	return g
}

func (g *linkGate) release() { g.closed.Do(func() { close(g.open) }) }

// waitPending waits until n links are waiting behind a call in flight.
func waitPending(t *testing.T, b *Backend, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.batches.mu.Lock()
		got := 0
		for _, d := range b.batches.dirs {
			got += len(d.pending)
		}
		b.batches.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d links waiting, want %d", got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestLinksOfOneDirectoryAreGrouped: uploads into one directory that
// finish while a link of it is under way are linked together in the next
// set_children, each with its metadata; another directory is not held up.
func TestLinksOfOneDirectoryAreGrouped(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), &syncBuffer{})
	if err := b.Mkdir(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir(t.Context(), "other"); err != nil {
		t.Fatal(err)
	}
	g := holdFirstLink(t, f)

	const n = 8
	errs := make(chan error, n+1)
	go func() {
		_, err := b.Put(t.Context(), "d/first", strings.NewReader("first"), 5, backends.PutOptions{IfNoneMatch: true})
		errs <- err
	}()
	<-g.held
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	for i := range n {
		go func() {
			data := fmt.Sprintf("file %d", i)
			_, err := b.Put(t.Context(), fmt.Sprintf("d/f%d", i), strings.NewReader(data), int64(len(data)),
				backends.PutOptions{IfNoneMatch: true, Meta: backends.Meta{MTime: &mtime}})
			errs <- err
		}()
	}
	waitPending(t, b, n)
	// A link into another directory goes at once, beside the held one.
	put(t, b, "other/x", "x", backends.PutOptions{IfNoneMatch: true})
	g.release()
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := g.calls.Load(); got != 3 {
		t.Errorf("%d set_children calls, want 3 (the held one, the other directory, one batch of %d)", got, n)
	}
	if s := b.BatchStats(); s.Fallbacks != 0 {
		t.Errorf("stats %+v: a batch fell back", s)
	}
	kids := names(t, b, "d")
	for i := range n {
		e, ok := kids[fmt.Sprintf("f%d", i)]
		if !ok {
			t.Fatalf("f%d is not linked: %v", i, kids)
		}
		if !e.ModTime.Equal(mtime) {
			t.Errorf("f%d: mtime %v, want %v", i, e.ModTime, mtime)
		}
		if got := content(t, b, "d/"+e.Name); got != fmt.Sprintf("file %d", i) {
			t.Errorf("f%d reads %q", i, got)
		}
	}
	b.batches.mu.Lock()
	left := len(b.batches.dirs)
	b.batches.mu.Unlock()
	if left != 0 {
		t.Errorf("%d directory queues left after the links", left)
	}
	f.checkClean(t)
}

// TestBatchClashFallsBackPerChild: a batch with replace=false that a name
// taken meanwhile rejects whole is sent again child by child: the others
// are linked, the culprit fails with ErrExist and leaves the other
// client's file alone.
func TestBatchClashFallsBackPerChild(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	b := open(t, f, root, &syncBuffer{})
	g := holdFirstLink(t, f)

	errs := make(chan error, 1)
	go func() {
		_, err := b.Put(t.Context(), "first", strings.NewReader("first"), 5, backends.PutOptions{IfNoneMatch: true})
		errs <- err
	}()
	<-g.held
	results := map[string]chan error{}
	for _, name := range []string{"a", "b", "c"} {
		ch := make(chan error, 1)
		results[name] = ch
		go func() {
			_, err := b.Put(t.Context(), name, strings.NewReader("mine "+name), int64(5+len(name)), backends.PutOptions{IfNoneMatch: true})
			ch <- err
		}()
	}
	waitPending(t, b, 3)
	// Another client links b now, after the uploads' listings.
	other := open(t, f, root, &syncBuffer{})
	f.setBefore(nil)
	put(t, other, "b", "theirs", backends.PutOptions{IfNoneMatch: true})
	g.release()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "c"} {
		if err := <-results[name]; err != nil {
			t.Errorf("Put(%s): %v", name, err)
		} else if got := content(t, b, name); got != "mine "+name {
			t.Errorf("%s reads %q", name, got)
		}
	}
	if err := <-results["b"]; !errors.Is(err, backends.ErrExist) || !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("Put(b) = %v, want ErrExist and ErrPrecondition", err)
	}
	if got := content(t, b, "b"); got != "theirs" {
		t.Errorf("b reads %q, want the other client's", got)
	}
	if s := b.BatchStats(); s.Fallbacks != 1 {
		t.Errorf("stats %+v, want one fallback", s)
	}
	f.checkClean(t)
}

// TestBatchedLinkHonoursTheCallersDeadline: a link waiting behind a call
// that does not end returns when its caller's context does, and is not
// linked later.
func TestBatchedLinkHonoursTheCallersDeadline(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), &syncBuffer{})
	g := holdFirstLink(t, f)
	errs := make(chan error, 1)
	go func() {
		_, err := b.Put(t.Context(), "first", strings.NewReader("first"), 5, backends.PutOptions{IfNoneMatch: true})
		errs <- err
	}()
	<-g.held
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := b.Put(ctx, "late", strings.NewReader("late"), 4, backends.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v, want the deadline", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Put returned %v after its deadline", took)
	}
	g.release()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if _, ok := names(t, b, "")["late"]; ok {
		t.Error("the link whose caller gave up was made")
	}
	if got := g.calls.Load(); got != 1 {
		t.Errorf("%d set_children calls, want 1", got)
	}
}

// TestTakeBatch: names that are one in NFC never share a batch, and the
// bounds hold.
func TestTakeBatch(t *testing.T) {
	mk := func(name string) *linkReq { return &linkReq{name: name, body: []byte(`["filenode",{}]`)} }
	batch, rest := takeBatch([]*linkReq{mk("a"), mk("e\u0301"), mk("b"), mk("\u00e9")})
	if len(batch) != 3 || len(rest) != 1 || rest[0].name != "\u00e9" {
		t.Errorf("batch %d, rest %d", len(batch), len(rest))
	}
	var many []*linkReq
	for i := range maxBatchChildren + 3 {
		many = append(many, mk(fmt.Sprint(i)))
	}
	batch, rest = takeBatch(many)
	if len(batch) != maxBatchChildren || len(rest) != 3 {
		t.Errorf("batch %d, rest %d", len(batch), len(rest))
	}
}
