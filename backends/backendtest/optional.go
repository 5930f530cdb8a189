package backendtest

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// testCapabilities: Capabilities gives the same answer twice, its fields
// agree with each other and with the interfaces the backend implements,
// and String names the backend.
func testCapabilities(s *suite) {
	again, err := s.b.Capabilities(s.ctx)
	if err != nil {
		s.Fatalf("Capabilities, the second time: %v", err)
	}
	first := s.caps
	first.Notes, again.Notes = nil, nil
	if !reflect.DeepEqual(first, again) {
		s.Errorf("Capabilities changed between two calls:\n%+v\n%+v", first, again)
	}
	for _, f := range []struct {
		name  string
		field backends.MetaField
	}{{"MTime", s.caps.MTime}, {"Mode", s.caps.Mode}, {"Owner", s.caps.Owner}, {"Hash", s.caps.Hash}, {"Type", s.caps.Type}} {
		if !f.field.Stored && !f.field.OnPut && f.field.Precision != 0 {
			s.Errorf("Capabilities.%s = %+v: a Precision for a kind neither stored nor stored on Put", f.name, f.field)
		}
		if f.name != "MTime" && f.field.Precision != 0 {
			s.Errorf("Capabilities.%s has a Precision (%v); only MTime is a time", f.name, f.field.Precision)
		}
		if f.field.Precision < 0 {
			s.Errorf("Capabilities.%s has a negative Precision", f.name)
		}
	}
	implements := func(cond bool, name string, ok bool) {
		if cond && !ok {
			s.Errorf("the capabilities say %s but the backend does not implement it", name)
		}
	}
	_, isMeta := s.b.(backends.MetaSetter)
	_, isSym := s.b.(backends.Symlinker)
	_, isLink := s.b.(backends.Linker)
	_, isQuota := s.b.(backends.QuotaReader)
	implements(s.storesAny() && !s.caps.ReadOnly, "MetaSetter (it keeps metadata)", isMeta)
	implements(s.caps.Symlinks, "Symlinker", isSym)
	implements(s.caps.HardLinks, "Linker", isLink)
	implements(s.caps.Quota, "QuotaReader", isQuota)
	if s.b.String() == "" {
		s.Errorf("String is empty")
	}
}

// testSymlink: Symlink makes a native link whose target is stored as given
// and never followed; its entry (from Symlink, Stat and List) has
// Meta.Type "symlink" and LinkTarget. Creating one where something is
// fails with ErrExist; removing or renaming it leaves its target alone.
func testSymlink(s *suite) {
	if !s.caps.Symlinks {
		s.Skip("no Capabilities.Symlinks")
	}
	sl, ok := s.b.(backends.Symlinker)
	if !ok {
		s.Fatal("Capabilities.Symlinks but no Symlinker")
	}
	s.mkdir("dir")
	s.put("dir/file", "F")
	targets := []string{"dir/file", "dir", "no/such/target", "../outside the root/ü #?%", "/etc/passwd", "dir/"}
	for i, target := range targets {
		p := fmt.Sprintf("link%d", i)
		e, err := sl.Symlink(s.ctx, target, p)
		if err != nil {
			s.Errorf("Symlink(%q, %q): %v", target, p, err)
			continue
		}
		for where, got := range map[string]backends.Entry{"Symlink": e, "Stat": s.stat(p), "List": s.list("")[p]} {
			if got.Name != p || got.IsDir || got.Meta.Type != "symlink" || got.LinkTarget != target {
				s.Errorf("%s of a link to %q: %s, want a link named %q with that target", where, target, show(got), p)
			}
		}
	}
	_, err := sl.Symlink(s.ctx, "x", "dir/file")
	s.wantErr("Symlink over a file", err, backends.ErrExist)
	_, err = sl.Symlink(s.ctx, "x", "link0")
	s.wantErr("Symlink over a link", err, backends.ErrExist)
	_, err = sl.Symlink(s.ctx, "x", "no/such/link")
	s.wantErr("Symlink in a missing directory", err, backends.ErrNotFound)
	s.hasContent("after a Symlink over it", "dir/file", "F")

	if err := s.b.Remove(s.ctx, "link1"); err != nil {
		s.Errorf("Remove of a link to a directory: %v", err)
	}
	s.gone("a removed link", "link1")
	s.wantNames("the target of a removed link", "dir", "file")
	if err := s.b.Rename(s.ctx, "link0", "renamed link", false); err != nil {
		s.Fatalf("Rename of a link: %v", err)
	}
	if e := s.stat("renamed link"); e.LinkTarget != "dir/file" || e.Meta.Type != "symlink" {
		s.Errorf("a renamed link: %s", show(e))
	}
	s.hasContent("the target of a renamed link", "dir/file", "F")
}

// testHardLink: Link makes another name of a file, with its content; a
// name that is taken fails with ErrExist, a missing file with ErrNotFound;
// removing one name leaves the other.
func testHardLink(s *suite) {
	if !s.caps.HardLinks {
		s.Skip("no Capabilities.HardLinks")
	}
	ln, ok := s.b.(backends.Linker)
	if !ok {
		s.Fatal("Capabilities.HardLinks but no Linker")
	}
	s.put("orig", "content")
	s.mkdir("d")
	e, err := ln.Link(s.ctx, "orig", "d/other")
	if err != nil {
		s.Fatalf("Link: %v", err)
	}
	s.checkFile("Link", e, "other", 7)
	s.hasContent("a second name", "d/other", "content")
	s.hasContent("the first name", "orig", "content")
	_, err = ln.Link(s.ctx, "orig", "d/other")
	s.wantErr("Link onto a name taken", err, backends.ErrExist)
	_, err = ln.Link(s.ctx, "missing", "d/x")
	s.wantErr("Link of a missing file", err, backends.ErrNotFound)
	_, err = ln.Link(s.ctx, "orig", "no/such/x")
	s.wantErr("Link into a missing directory", err, backends.ErrNotFound)
	if err := s.b.Remove(s.ctx, "orig"); err != nil {
		s.Fatalf("Remove of the first name: %v", err)
	}
	s.hasContent("the second name after the first is removed", "d/other", "content")
}

// testHasher: SHA256 is the hash of the content, also of an empty file and
// after an overwrite.
func testHasher(s *suite) {
	h, ok := s.b.(backends.Hasher)
	if !ok {
		s.Skip("the backend does not implement Hasher")
	}
	big := string(randomBytes(1<<20 + 5))
	for _, content := range []string{"hash me", "", big, "hash me again"} {
		s.put("h", content)
		got, err := h.SHA256(s.ctx, "h")
		if err != nil || got != sum(content) {
			s.Errorf("SHA256 of %s = %q, %v; want %q", short(content), got, err, sum(content))
		}
	}
	s.mkdir("d")
	if _, err := h.SHA256(s.ctx, "d"); err == nil {
		s.Errorf("SHA256 of a directory succeeded")
	}
}

// testSizedReader: ReadSized reads like Read when the size is right, and
// fails with ErrProtocol (at once or while reading) when the file has
// another size, as after another client's overwrite.
func testSizedReader(s *suite) {
	sr, ok := s.b.(backends.SizedReader)
	if !ok {
		s.Skip("the backend does not implement SizedReader")
	}
	const content = "0123456789abcdefghij"
	s.put("r", content)
	read := func(off, length, size int64) (string, error) {
		rc, err := sr.ReadSized(s.ctx, "r", off, length, size)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		return string(data), err
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, content}, {5, 5, "56789"}, {18, 10, "ij"}, {20, -1, ""}} {
		if got, err := read(c.off, c.n, 20); err != nil || got != c.want {
			s.Errorf("ReadSized(off %d, length %d, size 20) = %q, %v; want %q", c.off, c.n, got, err, c.want)
		}
	}
	for _, size := range []int64{19, 21} {
		for _, r := range [][2]int64{{0, -1}, {5, 5}} {
			got, err := read(r[0], r[1], size)
			s.wantErr(fmt.Sprintf("ReadSized(off %d, length %d) with size %d of a file of 20 bytes (read %q)", r[0], r[1], size, got),
				err, backends.ErrProtocol)
		}
	}
	s.put("r", strings.Repeat("z", 30))
	_, err := read(0, -1, 20)
	s.wantErr("ReadSized with the size from before an overwrite", err, backends.ErrProtocol)
}

// testQuota: with Capabilities.Quota, Quota gives real figures.
func testQuota(s *suite) {
	if !s.caps.Quota {
		s.Skip("no Capabilities.Quota")
	}
	qr, ok := s.b.(backends.QuotaReader)
	if !ok {
		s.Fatal("Capabilities.Quota but no QuotaReader")
	}
	q, err := qr.Quota(s.ctx)
	if err != nil {
		s.Fatalf("Quota: %v", err)
	}
	if q.Used < 0 || q.Available < 0 {
		s.Errorf("Quota = %+v; want real figures (Capabilities.Quota)", q)
	}
}
