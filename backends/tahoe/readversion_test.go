package tahoe

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
)

// readVersion reads p's version whole.
func readVersion(t *testing.T, b *Backend, p, version string, size int64) (string, error) {
	rc, err := b.ReadVersion(t.Context(), p, version, 0, -1, size)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

// TestReadVersionReadsByCap: a version is read from its own cap, never
// through the path: after another client links other content of the same
// size at the name, the version listed before still reads its own bytes,
// and the reads are GETs of /uri/$FILECAP with no path below it.
func TestReadVersionReadsByCap(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	b := open(t, f, root, &syncBuffer{})
	if err := b.Mkdir(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	// Over 55 bytes: CHK files, not literal ones.
	oldData, newData := strings.Repeat("old bytes ", 10), strings.Repeat("new bytes ", 10)
	old := put(t, b, "d/a", oldData, backends.PutOptions{})
	other := open(t, f, root, &syncBuffer{})
	put(t, other, "d/a", newData, backends.PutOptions{})

	var mu sync.Mutex
	var gets []string
	f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			mu.Lock()
			gets = append(gets, r.URL.EscapedPath())
			mu.Unlock()
		}
		return false
	})
	got, err := readVersion(t, b, "d/a", old.Version, old.Size)
	if err != nil || got != oldData {
		t.Fatalf("ReadVersion of the version listed before = %q, %v; want the old bytes", got, err)
	}
	if got := content(t, b, "d/a"); got != newData {
		t.Fatalf("Read by path = %q, want the new bytes", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gets) != 2 {
		t.Fatalf("ranged GETs %d, want 2", len(gets))
	}
	if segs := strings.Split(strings.TrimPrefix(gets[0], "/uri/"), "/"); len(segs) != 1 ||
		!strings.HasPrefix(strings.ReplaceAll(segs[0], "%3A", ":"), "URI:CHK:") {
		t.Errorf("the read by version went to a path of %d segments below /uri/, not to a file cap", len(segs))
	}
}

// TestReadVersionWithoutMemory: a backend that has not listed the file
// finds the version in the parent's listing; a version that is no longer
// there fails with ErrPrecondition, and no error quotes a cap.
func TestReadVersionWithoutMemory(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	w := open(t, f, root, &syncBuffer{})
	e := put(t, w, "a", "first", backends.PutOptions{})

	r := open(t, f, root, &syncBuffer{})
	if got, err := readVersion(t, r, "a", e.Version, e.Size); err != nil || got != "first" {
		t.Fatalf("ReadVersion = %q, %v", got, err)
	}
	put(t, w, "a", "other", backends.PutOptions{})
	fresh := open(t, f, root, &syncBuffer{})
	_, err := readVersion(t, fresh, "a", e.Version, e.Size)
	if !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("ReadVersion of a version gone = %v, want ErrPrecondition", err)
	}
	checkNoCaps(t, f, "the error", err.Error())
	_, err = readVersion(t, fresh, "missing", e.Version, e.Size)
	if !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("ReadVersion of a missing file = %v, want ErrPrecondition", err)
	}
	// The version the memory has is still read by its cap.
	if got, err := readVersion(t, r, "a", e.Version, e.Size); err != nil || got != "first" {
		t.Fatalf("ReadVersion from memory after the relink = %q, %v", got, err)
	}
	// A size that is not the version's fails.
	if _, err := readVersion(t, r, "a", e.Version, e.Size+1); !errors.Is(err, backends.ErrProtocol) {
		t.Fatalf("ReadVersion with another size = %v, want ErrProtocol", err)
	}
}

// TestCapMemoIsBounded: the memory of caps keeps the newest capMemoSize.
func TestCapMemoIsBounded(t *testing.T) {
	var m capMemo
	var first string
	for i := range capMemoSize + 10 {
		n := &node{kind: "filenode", ro: "URI:LIT:" + strings.Repeat("a", i%50) + string(rune('a'+i%26)) + strings.Repeat("b", i/50), size: 1}
		if i == 0 {
			first = fileVersion(n)
		}
		m.remember(n)
	}
	if len(m.caps) != capMemoSize || len(m.ring) != capMemoSize {
		t.Fatalf("memo holds %d (ring %d), want %d", len(m.caps), len(m.ring), capMemoSize)
	}
	if _, ok := m.lookup(first); ok {
		t.Error("the oldest cap is still remembered")
	}
}
