package backendtest

import (
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Run checks that the backends open returns keep the contract of package
// backends (see the package comment), one subtest per part of it. open is
// called once per subtest and returns a backend whose root is an empty
// directory that no one else uses (a new memory backend, a fresh
// subdirectory of a shared server); it registers with t.Cleanup whatever
// ends it, Close included. Run never closes the backend itself.
//
// Where backend.go is silent the suite decides as a filesystem above needs
// it, and says so in the package comment ("Decided by this suite"). A
// backend whose Capabilities are ReadOnly is given an empty root and cannot
// be filled, so only what reads and what must be refused is checked.
//
// A subtest that needs an optional interface or a capability the backend
// does not have is skipped, saying which.
func Run(t *testing.T, open func(t *testing.T) backends.Backend) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, open)
			if c.writes && s.caps.ReadOnly {
				t.Skip("the backend is read-only")
			}
			c.run(s)
		})
	}
}

// cases are the subtests of Run, in the order they run. writes marks those
// that need a backend that takes changes.
var cases = []struct {
	name   string
	writes bool
	run    func(*suite)
}{
	{"Capabilities", false, testCapabilities},
	{"Root", false, testRoot},
	{"Missing", false, testMissing},
	{"ReadOnly", false, testReadOnly},
	{"ListChildrenOnly", true, testListChildrenOnly},
	{"WrongType", true, testWrongType},
	{"Names", true, testNames},
	{"Mkdir", true, testMkdir},
	{"Remove", true, testRemove},
	{"PutRead", true, testPutRead},
	{"PutLarge", true, testPutLarge},
	{"PutSourceError", true, testPutSourceError},
	{"PutSizeMismatch", true, testPutSizeMismatch},
	{"ReadRanges", true, testReadRanges},
	{"ReadCloseEarly", true, testReadCloseEarly},
	{"ReadStreamCancel", true, testReadStreamCancel},
	{"Version", true, testVersion},
	{"ModTime", true, testModTime},
	{"PutIfNoneMatch", true, testPutIfNoneMatch},
	{"PutIfMatch", true, testPutIfMatch},
	{"RenameFile", true, testRenameFile},
	{"RenameDir", true, testRenameDir},
	{"MetaPut", true, testMetaPut},
	{"MetaSet", true, testMetaSet},
	{"MetaSetStale", true, testMetaSetStale},
	{"MetaOverwrite", true, testMetaOverwrite},
	{"MetaRename", true, testMetaRename},
	{"Symlink", true, testSymlink},
	{"HardLink", true, testHardLink},
	{"Hasher", true, testHasher},
	{"SizedReader", true, testSizedReader},
	{"Quota", false, testQuota},
	{"Concurrent", true, testConcurrent},
	{"CancelledContext", true, testCancelledContext},
}

// callTimeout bounds every subtest's calls, so that a hung backend fails
// the test rather than the test binary's timeout.
const callTimeout = 2 * time.Minute

// suite is one subtest's backend, its capabilities and a context for its
// calls.
type suite struct {
	*testing.T
	b    backends.Backend
	caps backends.Capabilities
	ctx  context.Context
}

func start(t *testing.T, open func(t *testing.T) backends.Backend) *suite {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	b := open(t)
	if b == nil {
		t.Fatal("open returned no backend")
	}
	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	return &suite{T: t, b: b, caps: caps, ctx: ctx}
}

// isErr reports whether err matches one of kinds.
func isErr(err error, kinds ...error) bool {
	return slices.ContainsFunc(kinds, func(k error) bool { return errors.Is(err, k) })
}

// wantErr fails the test unless err matches one of kinds.
func (s *suite) wantErr(what string, err error, kinds ...error) {
	s.Helper()
	if !isErr(err, kinds...) {
		s.Errorf("%s: got error %v, want %s", what, err, kindNames(kinds))
	}
}

func kindNames(kinds []error) string {
	var names []string
	for _, k := range kinds {
		names = append(names, strings.TrimPrefix(errName(k), "backends."))
	}
	return strings.Join(names, " or ")
}

// errName names a sentinel the way the code spells it.
func errName(k error) string {
	for name, e := range map[string]error{
		"ErrNotFound": backends.ErrNotFound, "ErrExist": backends.ErrExist, "ErrNotDir": backends.ErrNotDir,
		"ErrIsDir": backends.ErrIsDir, "ErrNotEmpty": backends.ErrNotEmpty, "ErrPermission": backends.ErrPermission,
		"ErrPrecondition": backends.ErrPrecondition, "ErrReadOnly": backends.ErrReadOnly,
		"ErrProtocol": backends.ErrProtocol, "ErrUnsupported": backends.ErrUnsupported,
		"context.Canceled": context.Canceled, "context.DeadlineExceeded": context.DeadlineExceeded,
	} {
		if e == k {
			return name
		}
	}
	return k.Error()
}

// tryPut stores content at p.
func (s *suite) tryPut(p, content string, opts backends.PutOptions) (backends.Entry, error) {
	return s.b.Put(s.ctx, p, strings.NewReader(content), int64(len(content)), opts)
}

// put stores content at p and checks the entry Put returns.
func (s *suite) put(p, content string) backends.Entry {
	s.Helper()
	return s.putOpts(p, content, backends.PutOptions{})
}

// putOpts is put with options.
func (s *suite) putOpts(p, content string, opts backends.PutOptions) backends.Entry {
	s.Helper()
	e, err := s.tryPut(p, content, opts)
	if err != nil {
		s.Fatalf("Put(%q): %v", p, err)
	}
	s.checkFile("Put("+p+")", e, path.Base(p), int64(len(content)))
	return e
}

// checkFile fails the test unless e describes a regular file named name of
// size bytes, with a version.
func (s *suite) checkFile(where string, e backends.Entry, name string, size int64) {
	s.Helper()
	if e.Name != name || e.IsDir || e.Size != size || e.Version == "" {
		s.Errorf("%s: entry %s; want a file named %q of %d bytes with a version", where, show(e), name, size)
	}
}

// mkdir creates the directory p.
func (s *suite) mkdir(p string) {
	s.Helper()
	if err := s.b.Mkdir(s.ctx, p); err != nil {
		s.Fatalf("Mkdir(%q): %v", p, err)
	}
}

// stat returns the entry of p.
func (s *suite) stat(p string) backends.Entry {
	s.Helper()
	e, err := s.b.Stat(s.ctx, p)
	if err != nil {
		s.Fatalf("Stat(%q): %v", p, err)
	}
	return e
}

// gone fails the test unless nothing is at p.
func (s *suite) gone(what, p string) {
	s.Helper()
	if e, err := s.b.Stat(s.ctx, p); !errors.Is(err, backends.ErrNotFound) {
		s.Errorf("%s: Stat(%q) = %s, %v; want ErrNotFound", what, p, show(e), err)
	}
}

// readRange reads length bytes of p from off.
func (s *suite) readRange(p string, off, length int64) (string, error) {
	rc, err := s.b.Read(s.ctx, p, off, length)
	if err != nil {
		return "", err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return string(data), err
}

// content returns the whole content of p.
func (s *suite) content(p string) string {
	s.Helper()
	data, err := s.readRange(p, 0, -1)
	if err != nil {
		s.Fatalf("Read(%q): %v", p, err)
	}
	return data
}

// hasContent fails the test unless p holds want.
func (s *suite) hasContent(what, p, want string) {
	s.Helper()
	if got, err := s.readRange(p, 0, -1); err != nil || got != want {
		s.Errorf("%s: %q holds %s (%v), want %s", what, p, short(got), err, short(want))
	}
}

// list returns the children of the directory p by name, checking that the
// listing names each once, with a name that can be a directory entry.
func (s *suite) list(p string) map[string]backends.Entry {
	s.Helper()
	es, err := s.b.List(s.ctx, p)
	if err != nil {
		s.Fatalf("List(%q): %v", p, err)
	}
	out := map[string]backends.Entry{}
	for _, e := range es {
		if problem := backends.NameProblem(e.Name); problem != "" {
			s.Errorf("List(%q) has an entry with %s: %s", p, problem, show(e))
		}
		if _, dup := out[e.Name]; dup {
			s.Errorf("List(%q) names %q twice", p, e.Name)
		}
		out[e.Name] = e
	}
	return out
}

// names returns the sorted names of the children of p.
func (s *suite) names(p string) []string {
	s.Helper()
	var out []string
	for name := range s.list(p) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// wantNames fails the test unless the children of p are exactly want.
func (s *suite) wantNames(what, p string, want ...string) {
	s.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := s.names(p); !slices.Equal(got, want) {
		s.Errorf("%s: List(%q) = %q, want %q", what, p, got, want)
	}
}

// metaSetter returns the backend as a MetaSetter, skipping the test when
// it is none.
func (s *suite) metaSetter() backends.MetaSetter {
	s.Helper()
	ms, ok := s.b.(backends.MetaSetter)
	if !ok {
		s.Skip("the backend does not implement MetaSetter")
	}
	return ms
}
