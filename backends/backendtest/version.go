package backendtest

import (
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// clockSkew is how far a server's clock may be from ours.
const clockSkew = 15 * time.Minute

// statVersionWait is how long after a write a same-size rewrite is seen by
// a Version made with backends.StatVersion: past the coarsest mtime
// granularity of a server's file system (2 s, FAT).
const statVersionWait = 2100 * time.Millisecond

// testVersion: a file's Version is never empty, is the same from Put, Stat
// and List, stays while nothing changes, and changes with the content,
// whether its size changes or not.
func testVersion(s *suite) {
	e1 := s.put("v", "one")
	s.sameEntry("Put and Stat", e1, s.stat("v"))
	s.sameEntry("Put and List", e1, s.list("")["v"])
	if again := s.stat("v"); again.Version != e1.Version {
		s.Errorf("the version of an unchanged file went from %q to %q", e1.Version, again.Version)
	}
	e2 := s.put("v", "three!")
	if e2.Version == e1.Version {
		s.Errorf("an overwrite with another size kept the version %q", e1.Version)
	}
	s.sameEntry("Put and Stat after an overwrite", e2, s.stat("v"))
	e3 := s.put("v", "four!!")
	if e3.Version == e2.Version {
		if !isStatVersion(e2.Version) {
			s.Fatalf("an overwrite of the same size kept the version %q", e2.Version)
		}
		s.Logf("an overwrite of the same size within the server's mtime granularity kept the version %q "+
			"(StatVersion); trying again after %v", e2.Version, statVersionWait)
		time.Sleep(statVersionWait)
		e3 = s.put("v", "five!!")
		if e3.Version == e2.Version {
			s.Errorf("an overwrite of the same size %v later kept the version %q", statVersionWait, e2.Version)
		}
	}
	s.sameEntry("Put and Stat after a same-size overwrite", e3, s.stat("v"))
}

// isStatVersion reports whether v was made by backends.StatVersion.
func isStatVersion(v string) bool {
	return strings.HasPrefix(v, backends.StatVersion(0, time.Unix(0, 0))[:1])
}

// testModTime: a file stored without an mtime has the server's time of
// the upload, the same from Put, Stat and List.
func testModTime(s *suite) {
	before := time.Now()
	e := s.put("t", "x")
	after := time.Now()
	slack := clockSkew + max(s.caps.MTime.Precision, 2*time.Second)
	if e.ModTime.Before(before.Add(-slack)) || e.ModTime.After(after.Add(slack)) {
		s.Errorf("ModTime of a file just stored is %v, not within %v of %v", e.ModTime, slack, before)
	}
	if st := s.stat("t"); !st.ModTime.Equal(e.ModTime) {
		s.Errorf("ModTime from Put %v, from Stat %v", e.ModTime, st.ModTime)
	}
	if ls := s.list("")["t"]; !ls.ModTime.Equal(e.ModTime) {
		s.Errorf("ModTime from Put %v, from List %v", e.ModTime, ls.ModTime)
	}
}

// testPutIfNoneMatch: a create (IfNoneMatch) succeeds where nothing is and
// fails where a file is with an error matching both ErrExist and
// ErrPrecondition, leaving the file alone.
func testPutIfNoneMatch(s *suite) {
	create := backends.PutOptions{IfNoneMatch: true}
	s.putOpts("c", "first", create)
	_, err := s.tryPut("c", "second", create)
	if !isErr(err, backends.ErrExist) || !isErr(err, backends.ErrPrecondition) {
		s.Errorf("a create over an existing file: %v, want an error matching both ErrExist and ErrPrecondition", err)
	}
	s.hasContent("after a refused create", "c", "first")
	s.mkdir("d")
	_, err = s.tryPut("d", "x", create)
	s.wantErr("a create over a directory", err, backends.ErrExist, backends.ErrIsDir)
	if e := s.stat("d"); !e.IsDir {
		s.Errorf("after a create over it, the directory is %s", show(e))
	}
}

// testPutIfMatch: an overwrite on condition (IfMatch) succeeds while the
// version is current and fails with ErrPrecondition once it is not, when
// the file is gone, or for a version the server never gave; a refused one
// changes nothing.
func testPutIfMatch(s *suite) {
	e1 := s.put("f", "v1")
	e2 := s.putOpts("f", "v2 longer", backends.PutOptions{IfMatch: e1.Version})
	if e2.Version == e1.Version {
		s.Errorf("the version after a conditional overwrite is still %q", e1.Version)
	}
	_, err := s.tryPut("f", "v3", backends.PutOptions{IfMatch: e1.Version})
	s.wantErr("an overwrite on a stale version", err, backends.ErrPrecondition)
	s.hasContent("after a refused overwrite", "f", "v2 longer")
	if st := s.stat("f"); st.Version != e2.Version {
		s.Errorf("a refused overwrite changed the version from %q to %q", e2.Version, st.Version)
	}
	_, err = s.tryPut("f", "v4", backends.PutOptions{IfMatch: "no such version"})
	s.wantErr("an overwrite on a version never given", err, backends.ErrPrecondition)
	s.hasContent("after a refused overwrite", "f", "v2 longer")
	e5 := s.putOpts("f", "v5", backends.PutOptions{IfMatch: e2.Version})
	s.sameEntry("a conditional Put and Stat", e5, s.stat("f"))
	s.hasContent("after a second conditional overwrite", "f", "v5")

	_, err = s.tryPut("gone", "x", backends.PutOptions{IfMatch: e5.Version})
	s.wantErr("an overwrite on condition where no file is", err, backends.ErrPrecondition)
	s.gone("after a refused conditional overwrite", "gone")
}

// sameEntry fails the test unless a and b describe the same state of one
// file or directory.
func (s *suite) sameEntry(what string, a, b backends.Entry) {
	s.Helper()
	if a.Name != b.Name || a.IsDir != b.IsDir || a.Version != b.Version || a.LinkTarget != b.LinkTarget ||
		(!a.IsDir && a.Size != b.Size) {
		s.Errorf("%s disagree: %s and %s", what, show(a), show(b))
	}
}
