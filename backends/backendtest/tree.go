package backendtest

import (
	"path"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// testRoot: "" and "/" are the root, a directory named "", empty at first.
func testRoot(s *suite) {
	for _, root := range []string{"", "/"} {
		e := s.stat(root)
		if !e.IsDir || e.Name != "" {
			s.Errorf("Stat(%q) = %s, want a directory named \"\"", root, show(e))
		}
		s.wantNames("a fresh root", root)
	}
}

// testMissing: every call on a path where nothing is, or under a directory
// that does not exist, fails with ErrNotFound.
func testMissing(s *suite) {
	for _, p := range []string{"missing", "no/such/file"} {
		_, err := s.b.Stat(s.ctx, p)
		s.wantErr("Stat("+p+")", err, backends.ErrNotFound)
		_, err = s.b.List(s.ctx, p)
		s.wantErr("List("+p+")", err, backends.ErrNotFound)
		_, err = s.readRange(p, 0, -1)
		s.wantErr("Read("+p+")", err, backends.ErrNotFound)
		if s.caps.ReadOnly {
			continue
		}
		s.wantErr("Remove("+p+")", s.b.Remove(s.ctx, p), backends.ErrNotFound)
		s.wantErr("Rename("+p+")", s.b.Rename(s.ctx, p, "elsewhere", false), backends.ErrNotFound)
		s.gone("after Rename of a missing file", "elsewhere")
		if ms, ok := s.b.(backends.MetaSetter); ok {
			mode := modeA
			_, err := ms.SetMeta(s.ctx, p, backends.Meta{Mode: &mode}, "")
			s.wantErr("SetMeta("+p+")", err, backends.ErrNotFound)
		}
		if h, ok := s.b.(backends.Hasher); ok {
			_, err := h.SHA256(s.ctx, p)
			s.wantErr("SHA256("+p+")", err, backends.ErrNotFound)
		}
	}
}

// testListChildrenOnly: List gives the children of a directory, each once,
// and neither the directory itself nor anything deeper; the entries agree
// with Stat.
func testListChildrenOnly(s *suite) {
	s.mkdir("d")
	s.put("d/a", "A")
	s.mkdir("d/sub")
	s.put("d/sub/deep", "deeper")
	s.mkdir("d/sub/deeper dir")
	s.put("top", "T")
	s.wantNames("the root", "", "d", "top")
	s.wantNames("a directory", "d", "a", "sub")
	s.wantNames("a subdirectory", "d/sub", "deep", "deeper dir")
	s.wantNames("an empty directory", "d/sub/deeper dir")
	for name, e := range s.list("d") {
		st := s.stat(path.Join("d", name))
		if e.IsDir != st.IsDir || (!e.IsDir && (e.Size != st.Size || e.Version != st.Version)) {
			s.Errorf("List and Stat disagree on d/%s: %s and %s", name, show(e), show(st))
		}
	}
	if e := s.list("d")["sub"]; !e.IsDir {
		s.Errorf("List: d/sub is %s, want a directory", show(e))
	}
	if e := s.list("d")["a"]; e.IsDir || e.Size != 1 || e.Version == "" {
		s.Errorf("List: d/a is %s, want a file of 1 byte with a version", show(e))
	}
}

// testWrongType: a call meant for a file on a directory, or for a directory
// on a file, fails with the error that says so, and changes nothing.
func testWrongType(s *suite) {
	s.mkdir("dir")
	s.put("dir/keep", "K")
	s.put("file", "F")
	_, err := s.b.List(s.ctx, "file")
	s.wantErr("List of a file", err, backends.ErrNotDir)
	_, err = s.readRange("dir", 0, -1)
	s.wantErr("Read of a directory", err, backends.ErrIsDir)
	_, err = s.tryPut("dir", "x", backends.PutOptions{})
	s.wantErr("Put onto a directory", err, backends.ErrIsDir)
	if e := s.stat("dir"); !e.IsDir {
		s.Errorf("after a Put onto it the directory is %s", show(e))
	}
	s.hasContent("after a Put onto its directory", "dir/keep", "K")
	_, err = s.tryPut("", "x", backends.PutOptions{})
	s.wantErr("Put onto the root", err, backends.ErrIsDir)
	_, err = s.b.Stat(s.ctx, "file/below")
	s.wantErr("Stat below a file", err, backends.ErrNotFound, backends.ErrNotDir)
	_, err = s.tryPut("file/below", "x", backends.PutOptions{})
	s.wantErr("Put below a file", err, backends.ErrNotFound, backends.ErrNotDir)
	s.wantErr("Mkdir below a file", s.b.Mkdir(s.ctx, "file/below"), backends.ErrNotFound, backends.ErrNotDir)
	s.hasContent("after calls below it", "file", "F")
}

// names are names that must survive the trip to the server and back
// (URLs, hrefs, Destination headers, shell-free SFTP paths) unchanged.
var names = []string{
	"plain.txt",
	"two  spaces",
	"ünïcødé €.txt",
	"日本語のファイル",
	"emoji 🙂",
	"100% sure",
	"%20not-a-space",
	"%zz",
	"hash#tag",
	"#start",
	"what?.txt",
	"?",
	"a+b=c&d",
	"-leading-dash",
	"-",
	"it's",
	`say "hi"`,
	"semi;colon,comma",
	"brackets [1] {2} (3) <4>",
	"~tilde @at $dollar !bang ^caret `tick` |pipe",
	".hidden",
	"..double",
	strings.Repeat("x", backends.MaxNameBytes),
	strings.Repeat("é", (backends.MaxNameBytes-1)/2) + "x", // 255 bytes of two-byte characters
	strings.Repeat("日", backends.MaxNameBytes/3),           // 255 bytes of three-byte characters
}

// testNames: files and directories with every name of names can be
// created, stated, listed, read, renamed and removed, and come back with
// the very bytes of their names.
func testNames(s *suite) {
	s.mkdir("files")
	s.mkdir("dirs")
	s.mkdir("moved")
	for _, n := range names {
		f := path.Join("files", n)
		e := s.put(f, "content of "+n)
		if e.Name != n {
			s.Errorf("Put(%q) returned the name %q", f, e.Name)
		}
		s.checkFile("Stat("+f+")", s.stat(f), n, int64(len("content of "+n)))
		s.hasContent("a special name", f, "content of "+n)

		d := path.Join("dirs", n)
		s.mkdir(d)
		if e := s.stat(d); !e.IsDir || e.Name != n {
			s.Errorf("Stat(%q) = %s, want a directory named so", d, show(e))
		}
		s.put(path.Join(d, "child"), "c")
		s.wantNames("a directory with a special name", d, "child")
	}
	s.wantNames("files with special names", "files", names...)
	s.wantNames("directories with special names", "dirs", names...)
	for _, n := range names {
		from, to := path.Join("files", n), path.Join("moved", n)
		if err := s.b.Rename(s.ctx, from, to, false); err != nil {
			s.Errorf("Rename(%q, %q): %v", from, to, err)
			continue
		}
		s.hasContent("a renamed special name", to, "content of "+n)
		if err := s.b.Remove(s.ctx, to); err != nil {
			s.Errorf("Remove(%q): %v", to, err)
		}
		d := path.Join("dirs", n)
		if err := s.b.Remove(s.ctx, path.Join(d, "child")); err != nil {
			s.Errorf("Remove(%q): %v", path.Join(d, "child"), err)
		}
		if err := s.b.Remove(s.ctx, d); err != nil {
			s.Errorf("Remove(%q): %v", d, err)
		}
	}
	s.wantNames("after removing every special name", "files")
	s.wantNames("after removing every special name", "moved")
	s.wantNames("after removing every special name", "dirs")
}

// testMkdir: directories nest; Mkdir where something is fails with
// ErrExist; Mkdir and Put under a missing directory fail with ErrNotFound
// and make no directory.
func testMkdir(s *suite) {
	s.mkdir("a")
	s.mkdir("a/b")
	s.mkdir("a/b/c")
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if e := s.stat(p); !e.IsDir || e.Name != path.Base(p) {
			s.Errorf("Stat(%q) = %s, want a directory", p, show(e))
		}
	}
	s.wantNames("nested directories", "a/b", "c")
	s.put("a/f", "F")
	s.wantErr("Mkdir of an existing directory", s.b.Mkdir(s.ctx, "a/b"), backends.ErrExist)
	s.wantNames("after a refused Mkdir", "a/b", "c")
	s.wantErr("Mkdir over a file", s.b.Mkdir(s.ctx, "a/f"), backends.ErrExist)
	s.hasContent("after a Mkdir over it", "a/f", "F")
	s.wantErr("Mkdir of the root", s.b.Mkdir(s.ctx, ""), backends.ErrExist)
	s.wantErr("Mkdir under a missing directory", s.b.Mkdir(s.ctx, "a/no/such"), backends.ErrNotFound)
	s.gone("after a Mkdir under it", "a/no")
	_, err := s.tryPut("a/no/such", "x", backends.PutOptions{})
	s.wantErr("Put under a missing directory", err, backends.ErrNotFound)
	_, err = s.tryPut("a/no/such", "x", backends.PutOptions{IfNoneMatch: true})
	s.wantErr("a create under a missing directory", err, backends.ErrNotFound)
	s.gone("after a Put under it", "a/no")
}

// testRemove: Remove deletes a file and an empty directory, refuses a full
// directory with ErrNotEmpty, and refuses the root with ErrPermission.
func testRemove(s *suite) {
	s.put("f", "x")
	s.mkdir("empty")
	s.mkdir("full")
	s.put("full/child", "c")
	if err := s.b.Remove(s.ctx, "f"); err != nil {
		s.Errorf("Remove of a file: %v", err)
	}
	s.gone("a removed file", "f")
	if err := s.b.Remove(s.ctx, "empty"); err != nil {
		s.Errorf("Remove of an empty directory: %v", err)
	}
	s.gone("a removed directory", "empty")
	s.wantErr("Remove of a full directory", s.b.Remove(s.ctx, "full"), backends.ErrNotEmpty)
	s.hasContent("after a refused Remove of its directory", "full/child", "c")
	for _, root := range []string{"", "/"} {
		s.wantErr("Remove("+root+")", s.b.Remove(s.ctx, root), backends.ErrPermission)
	}
	if e := s.stat(""); !e.IsDir {
		s.Errorf("the root after Remove(\"\"): %s", show(e))
	}
	s.wantNames("the root after Remove(\"\")", "", "full")
	s.hasContent("after Remove(\"\")", "full/child", "c")
	if err := s.b.Remove(s.ctx, "full/child"); err != nil {
		s.Errorf("Remove: %v", err)
	}
	if err := s.b.Remove(s.ctx, "full"); err != nil {
		s.Errorf("Remove of a directory emptied: %v", err)
	}
	s.wantNames("the root after removing all", "")
}
