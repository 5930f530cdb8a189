package tahoe

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// listingPaths records the path below /uri/ of every listing (GET
// ?t=json) the fake gets, as the number of segments: 1 is a cap alone.
type listingPaths struct {
	mu   sync.Mutex
	segs []int
}

func recordListings(f *fakeNode) *listingPaths {
	lp := &listingPaths{}
	f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Query().Get("t") == "json" {
			lp.mu.Lock()
			lp.segs = append(lp.segs, len(strings.Split(strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/uri/"), "/"), "/")))
			lp.mu.Unlock()
		}
		return false
	})
	return lp
}

func (lp *listingPaths) take() []int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	s := lp.segs
	lp.segs = nil
	return s
}

// TestDirCapsSkipTheWalk: a directory listed a moment ago is listed again
// by its own cap, not through the path from the root; after dirCapTTL
// the path is walked again.
func TestDirCapsSkipTheWalk(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), &syncBuffer{})
	for _, d := range []string{"a", "a/b", "a/b/c"} {
		if err := b.Mkdir(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	b.dirs.now = func() time.Time { return now }
	lp := recordListings(f)
	put(t, b, "a/b/c/one", "1", backends.PutOptions{IfNoneMatch: true})
	first := lp.take()
	put(t, b, "a/b/c/two", "2", backends.PutOptions{IfNoneMatch: true})
	if got := lp.take(); len(got) != 1 || got[0] != 1 {
		t.Errorf("listings of the second Put %v, want one by the directory's cap (first Put: %v)", got, first)
	}
	now = now.Add(dirCapTTL)
	put(t, b, "a/b/c/three", "3", backends.PutOptions{IfNoneMatch: true})
	if got := lp.take(); len(got) != 1 || got[0] != 4 {
		t.Errorf("listings after the TTL %v, want one through the path (4 segments)", got)
	}
	if len(names(t, b, "a/b/c")) != 3 {
		t.Error("the files are not all there")
	}
}

// TestDirCapsForgottenOnRename: a directory this backend moved is never
// reached by its old path through a remembered cap.
func TestDirCapsForgottenOnRename(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), &syncBuffer{})
	for _, d := range []string{"a", "a/d"} {
		if err := b.Mkdir(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	put(t, b, "a/d/x", "x", backends.PutOptions{IfNoneMatch: true})
	if err := b.Rename(t.Context(), "a", "moved", false); err != nil {
		t.Fatal(err)
	}
	_, err := b.Put(t.Context(), "a/d/y", strings.NewReader("y"), 1, backends.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Put under the old path = %v, want ErrNotFound", err)
	}
	if _, ok := names(t, b, "moved/d")["y"]; ok {
		t.Error("the Put under the old path landed in the moved directory")
	}
	if err := b.Remove(t.Context(), "moved/d/x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(t.Context(), "moved/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "moved/d/x"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Stat in a removed directory = %v, want ErrNotFound", err)
	}
}

// TestDirCapsForgetAnyForm: forget drops a path given in another Unicode
// form, and what is below it.
func TestDirCapsForgetAnyForm(t *testing.T) {
	var d dirCaps
	n := &node{kind: "dirnode", rw: "URI:DIR2:x:y"}
	d.put("caf\u00e9", n)
	d.put("caf\u00e9/sub", n)
	d.put("other", n)
	d.forget("cafe\u0301")
	if _, ok := d.get("caf\u00e9"); ok {
		t.Error("the NFC form survived")
	}
	if _, ok := d.get("caf\u00e9/sub"); ok {
		t.Error("the child survived")
	}
	if _, ok := d.get("other"); !ok {
		t.Error("another directory was forgotten")
	}
}
