package backendtest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Values the metadata tests store: none is what a server gives by default.
var (
	mtimeA = time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC)
	mtimeB = time.Date(2011, 12, 13, 14, 15, 16, 123456789, time.UTC)
)

const (
	modeA, modeB = os.FileMode(0o751), os.FileMode(0o604)
	uidA, gidA   = uint32(1001), uint32(0) // a zero that is set
	uidB, gidB   = uint32(2002), uint32(3003)
)

func sum(content string) string {
	h := sha256.Sum256([]byte(content))
	return hex.EncodeToString(h[:])
}

// metaA is every kind of metadata, set to the A values, with the hash of
// content. Its type is that of a symbolic link kept as a small file where
// the backend has no native links, else of a fifo.
func (s *suite) metaA(content string) backends.Meta {
	mt, mode, uid, gid := mtimeA, modeA, uidA, gidA
	return backends.Meta{MTime: &mt, Mode: &mode, UID: &uid, GID: &gid, SHA256: sum(content), Type: s.specialType()}
}

// metaB is metaA with the B values.
func (s *suite) metaB(content string) backends.Meta {
	mt, mode, uid, gid := mtimeB, modeB, uidB, gidB
	return backends.Meta{MTime: &mt, Mode: &mode, UID: &uid, GID: &gid, SHA256: sum(content), Type: "socket"}
}

func (s *suite) specialType() string {
	if s.caps.Symlinks {
		return "fifo"
	}
	return "symlink"
}

// storesAny reports whether the server keeps any kind of metadata.
func (s *suite) storesAny() bool {
	c := s.caps
	return c.MTime.Stored || c.Mode.Stored || c.Owner.Stored || c.Hash.Stored || c.Type.Stored
}

// mtimeOnPutOnly reports whether the server takes an mtime with an upload
// but keeps none it could be given later (MTime OnPut, not Stored: an
// X-OC-Mtime server without dead properties). Such an mtime comes back as
// the ModTime of the content the Put stored, never in Meta.
func (s *suite) mtimeOnPutOnly() bool {
	return s.caps.MTime.OnPut && !s.caps.MTime.Stored
}

// sameTime reports whether a stored time came back as it was set, to the
// precision the backend claims: truncated to it, as the fs compares them.
func (s *suite) sameTime(got, want time.Time) bool {
	if p := s.caps.MTime.Precision; p > 0 {
		return got.Truncate(p).Equal(want.Truncate(p))
	}
	return got.Equal(want)
}

// checkMeta fails the test unless e carries the fields of want that the
// backend keeps (an unset field of want is not checked) and none of the
// kinds it does not keep.
func (s *suite) checkMeta(where string, e backends.Entry, want backends.Meta) {
	s.Helper()
	m, c := e.Meta, s.caps
	bad := func(kind string, got, wanted any) {
		s.Helper()
		s.Errorf("%s: %s %v, want %v (entry %s)", where, kind, got, wanted, show(e))
	}
	switch {
	case !c.MTime.Stored:
		if m.MTime != nil {
			bad("Meta.MTime of a kind not stored", fmtTime(m.MTime), "none")
		}
	case want.MTime != nil:
		if !s.sameTime(e.ModTime, *want.MTime) {
			bad("ModTime", e.ModTime, *want.MTime)
		}
		if m.MTime != nil && !s.sameTime(*m.MTime, *want.MTime) {
			bad("Meta.MTime", *m.MTime, *want.MTime)
		}
	}
	switch {
	case !c.Mode.Stored:
		if m.Mode != nil {
			bad("Meta.Mode of a kind not stored", *m.Mode, "none")
		}
	case want.Mode != nil && (m.Mode == nil || *m.Mode != *want.Mode):
		bad("Meta.Mode", fmtMode(m.Mode), fmtMode(want.Mode))
	}
	switch {
	case !c.Owner.Stored:
		if m.UID != nil || m.GID != nil {
			bad("Meta.UID/GID of a kind not stored", fmtID(m.UID)+"/"+fmtID(m.GID), "none")
		}
	default:
		if want.UID != nil && (m.UID == nil || *m.UID != *want.UID) {
			bad("Meta.UID", fmtID(m.UID), *want.UID)
		}
		if want.GID != nil && (m.GID == nil || *m.GID != *want.GID) {
			bad("Meta.GID", fmtID(m.GID), *want.GID)
		}
	}
	switch {
	case !c.Hash.Stored:
		if m.SHA256 != "" {
			bad("Meta.SHA256 of a kind not stored", m.SHA256, "none")
		}
	case want.SHA256 != "" && m.SHA256 != want.SHA256:
		bad("Meta.SHA256", m.SHA256, want.SHA256)
	}
	switch {
	case !c.Type.Stored:
		if m.Type != "" && !(m.Type == "symlink" && c.Symlinks) {
			bad("Meta.Type of a kind not stored", m.Type, "none")
		}
	case want.Type != "" && m.Type != want.Type:
		bad("Meta.Type", m.Type, want.Type)
	}
}

// checkMetaEverywhere checks the metadata of p from Stat and from List
// (and e, the entry a call returned, unless it is nil).
func (s *suite) checkMetaEverywhere(what, p string, e *backends.Entry, want backends.Meta) {
	s.Helper()
	if e != nil {
		s.checkMeta(what+", the entry returned", *e, want)
	}
	st := s.stat(p)
	s.checkMeta(what+", Stat", st, want)
	if e != nil && !st.IsDir {
		s.sameEntry(what+", the entry returned and Stat's", *e, st)
	}
	dir, name := splitPath(p)
	s.checkMeta(what+", List", s.list(dir)[name], want)
}

// checkPutMTime: on a server that takes an mtime with the upload only
// (mtimeOnPutOnly), the mtime of want, which a Put carried, comes back as
// the ModTime of p from that Put (e), Stat and List, to the Precision.
func (s *suite) checkPutMTime(what, p string, e backends.Entry, want backends.Meta) {
	s.Helper()
	if !s.mtimeOnPutOnly() || want.MTime == nil {
		return
	}
	dir, name := splitPath(p)
	for where, got := range map[string]backends.Entry{"Put": e, "Stat": s.stat(p), "List": s.list(dir)[name]} {
		if !s.sameTime(got.ModTime, *want.MTime) {
			s.Errorf("%s, %s: ModTime %v, want %v, the mtime the Put carried (Capabilities.MTime.OnPut)",
				what, where, got.ModTime, *want.MTime)
		}
	}
}

func splitPath(p string) (dir, name string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i], p[i+1:]
		}
	}
	return "", p
}

// testMetaPut: the metadata given to Put comes back from Put, Stat and List
// for every kind the backend keeps, and an mtime it takes with the upload
// only as the ModTime; the kinds it does not keep are ignored without an
// error and never show.
func testMetaPut(s *suite) {
	const content = "../target of a link kept as a file"
	want := s.metaA(content)
	e, err := s.tryPut("m", content, backends.PutOptions{Meta: want})
	if err != nil {
		s.Fatalf("Put with metadata: %v", err)
	}
	s.checkMetaEverywhere("Put with every kind of metadata", "m", &e, want)
	s.checkPutMTime("Put with every kind of metadata", "m", e, want)

	mode := modeB
	e, err = s.tryPut("mode only", "x", backends.PutOptions{Meta: backends.Meta{Mode: &mode}})
	if err != nil {
		s.Fatalf("Put with a mode: %v", err)
	}
	s.checkMetaEverywhere("Put with a mode only", "mode only", &e, backends.Meta{Mode: &mode})
}

// testMetaSet: SetMeta stores the fields it is given that the backend
// keeps, leaves the others as they were, works on directories, and returns
// the entry Stat then gives.
func testMetaSet(s *suite) {
	ms := s.metaSetter()
	const content = "set later"
	e0 := s.put("f", content)
	want := s.metaA(content)
	e, err := ms.SetMeta(s.ctx, "f", want, e0.Version)
	if err != nil {
		s.Fatalf("SetMeta of every kind: %v", err)
	}
	s.checkMetaEverywhere("SetMeta of every kind", "f", &e, want)

	b := s.metaB(content)
	for _, one := range []backends.Meta{{Mode: b.Mode}, {MTime: b.MTime}, {UID: b.UID}, {GID: b.GID}, {Type: b.Type}} {
		want.Merge(one)
		e, err := ms.SetMeta(s.ctx, "f", one, "")
		if err != nil {
			s.Fatalf("SetMeta(%s): %v", showMeta(one), err)
		}
		s.checkMetaEverywhere("SetMeta of one field ("+showMeta(one)+")", "f", &e, want)
	}
	s.hasContent("after SetMeta", "f", content)

	s.mkdir("d")
	dm := backends.Meta{MTime: b.MTime, Mode: b.Mode, UID: b.UID, GID: b.GID}
	e, err = ms.SetMeta(s.ctx, "d", dm, "")
	if err != nil {
		s.Fatalf("SetMeta of a directory: %v", err)
	}
	if !e.IsDir {
		s.Errorf("SetMeta of a directory returned %s", show(e))
	}
	s.checkMetaEverywhere("SetMeta of a directory", "d", &e, dm)
}

// testMetaSetStale: SetMeta with the version of a content that was
// replaced fails with ErrPrecondition and stores nothing (a hash must not
// land on another content); with the current version it succeeds.
func testMetaSetStale(s *suite) {
	ms := s.metaSetter()
	e1 := s.put("f", "one")
	e2 := s.put("f", "two!")
	stale := s.metaA("one")
	_, err := ms.SetMeta(s.ctx, "f", stale, e1.Version)
	s.wantErr("SetMeta for a replaced version", err, backends.ErrPrecondition)
	st := s.stat("f")
	if s.caps.Hash.Stored && st.Meta.SHA256 == stale.SHA256 {
		s.Errorf("after a refused SetMeta the file has the hash of the content it replaced")
	}
	if s.caps.Mode.Stored && st.Meta.Mode != nil && *st.Meta.Mode == modeA {
		s.Errorf("after a refused SetMeta the file has the mode it was refused")
	}
	_, err = ms.SetMeta(s.ctx, "f", stale, "no such version")
	s.wantErr("SetMeta for a version never given", err, backends.ErrPrecondition)

	cur := s.metaA("two!")
	e, err := ms.SetMeta(s.ctx, "f", cur, e2.Version)
	if err != nil {
		s.Fatalf("SetMeta for the current version: %v", err)
	}
	s.checkMetaEverywhere("SetMeta for the current version", "f", &e, cur)
}

// testMetaOverwrite: an overwrite keeps the mode and owner of the file it
// replaces, and drops its mtime, hash and type, which describe the old
// content; metadata given with the overwrite is stored anew. An mtime
// taken with the upload only counts as stored here.
func testMetaOverwrite(s *suite) {
	if !s.storesAny() && !s.mtimeOnPutOnly() {
		s.Skip("the backend keeps no metadata")
	}
	a := s.metaA("first")
	s.putOpts("f", "first", backends.PutOptions{Meta: a})
	e := s.put("f", "second, longer")
	kept := backends.Meta{Mode: a.Mode, UID: a.UID, GID: a.GID}
	s.checkMetaEverywhere("an overwrite without metadata", "f", &e, kept)
	for where, got := range map[string]backends.Entry{"Put": e, "Stat": s.stat("f"), "List": s.list("")["f"]} {
		m := got.Meta
		if (s.caps.MTime.Stored || s.caps.MTime.OnPut) &&
			(s.sameTime(got.ModTime, mtimeA) || (m.MTime != nil && s.sameTime(*m.MTime, mtimeA))) {
			s.Errorf("%s after an overwrite: the mtime of the old content stayed (%s)", where, show(got))
		}
		if m.SHA256 != "" && m.SHA256 != sum("second, longer") {
			s.Errorf("%s after an overwrite: the hash %s is not that of the new content", where, m.SHA256)
		}
		if m.Type != "" {
			s.Errorf("%s after an overwrite: the type %q of the old content stayed", where, m.Type)
		}
	}
	b := s.metaB("third")
	e = s.putOpts("f", "third", backends.PutOptions{Meta: b})
	s.checkMetaEverywhere("an overwrite with metadata", "f", &e, b)
	s.checkPutMTime("an overwrite with metadata", "f", e, b)
}

// testMetaRename: a renamed file keeps its metadata.
func testMetaRename(s *suite) {
	if !s.storesAny() {
		s.Skip("the backend keeps no metadata")
	}
	a := s.metaA("moving")
	s.putOpts("f", "moving", backends.PutOptions{Meta: a})
	s.mkdir("d")
	if err := s.b.Rename(s.ctx, "f", "d/g", false); err != nil {
		s.Fatalf("Rename: %v", err)
	}
	s.checkMetaEverywhere("a renamed file", "d/g", nil, a)
}
