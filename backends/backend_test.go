package backends

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestMetaMergeKeepsUnsetFields(t *testing.T) {
	t1 := time.Unix(1, 0)
	mode := os.FileMode(0o640)
	uid := uint32(7)
	m := Meta{MTime: &t1, Mode: &mode, SHA256: "aa"}
	m.Merge(Meta{UID: &uid, Type: "symlink"})
	if m.MTime != &t1 || m.Mode != &mode || m.SHA256 != "aa" || m.UID != &uid || m.Type != "symlink" || m.GID != nil {
		t.Fatalf("after merge: %+v", m)
	}
	if !(Meta{}).IsZero() || m.IsZero() {
		t.Fatal("IsZero")
	}
}

func TestDescribeMatchesKind(t *testing.T) {
	err := Describe(ErrAuth, "the server refused user %q", "alice")
	if err.Error() != `the server refused user "alice"` {
		t.Fatalf("text %q", err)
	}
	if !errors.Is(err, ErrAuth) {
		t.Fatal("errors.Is(Describe(ErrAuth, ...), ErrAuth) is false")
	}
}
