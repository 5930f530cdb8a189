package webdav

import (
	"errors"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// suiteConditional checks If-None-Match and If-Match uploads.
func suiteConditional(t *testing.T, b *Backend, dir func(string) string) {
	ctx := testContext(t)
	t.Run("conditional put", func(t *testing.T) {
		d := dir("cond")
		p := path.Join(d, "c")
		e1, err := b.Put(ctx, p, strings.NewReader("v1"), 2, backends.PutOptions{IfNoneMatch: true})
		if err != nil {
			t.Fatalf("create with If-None-Match: %v", err)
		}
		_, err = b.Put(ctx, p, strings.NewReader("v2"), 2, backends.PutOptions{IfNoneMatch: true})
		if !errors.Is(err, backends.ErrExist) || !errors.Is(err, backends.ErrPrecondition) {
			t.Errorf("If-None-Match on existing: %v, want ErrExist and ErrPrecondition", err)
		}
		time.Sleep(10 * time.Millisecond) // a new mtime for servers whose ETag is size+mtime
		e2, err := b.Put(ctx, p, strings.NewReader("v2 longer"), 9, backends.PutOptions{IfMatch: e1.Version})
		if err != nil {
			t.Fatalf("If-Match current: %v", err)
		}
		if e2.Version == e1.Version {
			t.Fatalf("version unchanged after overwrite: %s", e2.Version)
		}
		_, err = b.Put(ctx, p, strings.NewReader("v3"), 2, backends.PutOptions{IfMatch: e1.Version})
		if !errors.Is(err, backends.ErrPrecondition) {
			t.Errorf("If-Match stale: %v, want ErrPrecondition", err)
		}
		if got := readAll(t, b, p, 0, -1); got != "v2 longer" {
			t.Errorf("content after refused put: %q", got)
		}
	})

}

// suiteMeta checks metadata stored as dead properties or with X-OC-Mtime.
func suiteMeta(t *testing.T, b *Backend, caps backends.Capabilities, base string, dir func(string) string) {
	ctx := testContext(t)
	t.Run("meta", func(t *testing.T) {
		if !caps.Mode.Stored {
			t.Skip("server keeps no dead properties")
		}
		d := dir("meta")
		p := path.Join(d, "m")
		mt := time.Unix(1700000000, 123456789)
		mode, uid, gid := os.FileMode(0o4755), uint32(1001), uint32(0)
		sum := strings.Repeat("ab", 32)
		e, err := b.Put(ctx, p, strings.NewReader("/target"), 7, backends.PutOptions{
			Meta: backends.Meta{MTime: &mt, Mode: &mode, UID: &uid, GID: &gid, SHA256: sum, Type: "symlink"},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkMeta(t, e, &mt, &mode, &uid, &gid, sum, "symlink")
		if !e.ModTime.Equal(mt) {
			t.Errorf("ModTime %v, want %v", e.ModTime, mt)
		}
		mt2 := time.Unix(1600000000, 1)
		mode2 := os.FileMode(0o600)
		old := e.Version
		e, err = b.SetMeta(ctx, p, backends.Meta{MTime: &mt2, Mode: &mode2}, old)
		if err != nil {
			t.Fatal(err)
		}
		checkMeta(t, e, &mt2, &mode2, &uid, &gid, sum, "symlink")
		// Overwriting drops what described the old content, keeps ownership.
		e, err = b.Put(ctx, p, strings.NewReader("plain"), 5, backends.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkMeta(t, e, nil, &mode2, &uid, &gid, "", "")
		// A hash of the old version is refused for the new one.
		if _, err := b.SetMeta(ctx, p, backends.Meta{SHA256: sum}, old); !errors.Is(err, backends.ErrPrecondition) {
			t.Errorf("SetMeta for a replaced version: %v, want ErrPrecondition", err)
		}
		if e, err := b.Stat(ctx, p); err != nil || e.Meta.SHA256 != "" {
			t.Errorf("after a refused SetMeta the server has hash %q (%v), want none", e.Meta.SHA256, err)
		}
		ls, _ := b.List(ctx, d)
		if len(ls) != 1 || ls[0].Meta.Mode == nil || *ls[0].Meta.Mode != mode2 {
			t.Errorf("List meta: %+v", ls)
		}
		dm := os.FileMode(0o700)
		if e, err := b.SetMeta(ctx, d, backends.Meta{Mode: &dm}, ""); err != nil || e.Meta.Mode == nil || *e.Meta.Mode != dm {
			t.Errorf("SetMeta on a directory: %+v, %v", e, err)
		}
	})

	t.Run("mtime on put", func(t *testing.T) {
		if !caps.MTime.OnPut || caps.Mode.Stored {
			t.Skip("server has no X-OC-Mtime (or stores ns mtimes as dead properties)")
		}
		mt := time.Unix(1500000000, 999)
		e, err := b.Put(ctx, path.Join(base, "oc"), strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}})
		if err != nil {
			t.Fatal(err)
		}
		if e.ModTime.Unix() != mt.Unix() {
			t.Errorf("ModTime %v, want %v", e.ModTime, mt.Truncate(time.Second))
		}
	})
}

func checkMeta(t *testing.T, e backends.Entry, mt *time.Time, mode *os.FileMode, uid, gid *uint32, sum, typ string) {
	t.Helper()
	m := e.Meta
	if (mt == nil) != (m.MTime == nil) || (mt != nil && !mt.Equal(*m.MTime)) {
		t.Errorf("mtime %v, want %v", m.MTime, mt)
	}
	if (mode == nil) != (m.Mode == nil) || (mode != nil && *mode != *m.Mode) {
		t.Errorf("mode %v, want %v", m.Mode, mode)
	}
	if (uid == nil) != (m.UID == nil) || (uid != nil && *uid != *m.UID) {
		t.Errorf("uid %v, want %v", m.UID, uid)
	}
	if (gid == nil) != (m.GID == nil) || (gid != nil && *gid != *m.GID) {
		t.Errorf("gid %v, want %v", m.GID, gid)
	}
	if m.SHA256 != sum || m.Type != typ {
		t.Errorf("sha256 %q type %q, want %q %q", m.SHA256, m.Type, sum, typ)
	}
}
