package backends

import (
	"errors"
	"os"
	"strings"
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

func TestNameProblem(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"a.txt", true},
		{"caf\u00e9 #1?", true},
		{"tab\there", true}, // control characters are legal names, escaped in logs
		{strings.Repeat("x", 255), true},
		{strings.Repeat("x", 256), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a\x00b", false},
		{"a/b", false},
	} {
		if got := NameProblem(c.name) == ""; got != c.ok {
			t.Errorf("NameProblem(%q) = %q, want ok=%v", c.name, NameProblem(c.name), c.ok)
		}
	}
}

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain name.txt", "plain name.txt"},
		{"caf\u00e9", "caf\u00e9"},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"line\nforged=1", `line\nforged=1`},
		{"bad\xffutf8", `bad\xffutf8`},
		{`back\slash`, `back\\slash`},
		{"a\x00b", `a\x00b`},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestInTree(t *testing.T) {
	for _, c := range []struct {
		p, base string
		want    bool
	}{
		{"a", "", true}, {"", "", true}, {"a", "a", true}, {"a/b", "a", true}, {"a/b/c", "a/b", true},
		{"ab", "a", false}, {"a", "a/b", false}, {"b/a", "a", false}, {"", "a", false}, {"a-b/c", "a", false},
	} {
		if got := InTree(c.p, c.base); got != c.want {
			t.Errorf("InTree(%q, %q) = %v, want %v", c.p, c.base, got, c.want)
		}
	}
}
