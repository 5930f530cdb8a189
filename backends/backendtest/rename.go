package backendtest

import (
	"github.com/cloudmount/cloudmount/backends"
)

// testRenameFile: a file moves to a new name and into another directory;
// onto an existing file only with overwrite (else ErrExist, both left
// alone); into a missing directory with ErrNotFound; onto itself as a
// no-op.
func testRenameFile(s *suite) {
	s.put("a", "A")
	s.put("b", "BB")
	s.mkdir("sub")
	if err := s.b.Rename(s.ctx, "a", "c", false); err != nil {
		s.Fatalf("Rename to a new name: %v", err)
	}
	s.gone("the source of a rename", "a")
	s.hasContent("a renamed file", "c", "A")
	s.checkFile("Stat of a renamed file", s.stat("c"), "c", 1)

	s.wantErr("Rename onto a file without overwrite", s.b.Rename(s.ctx, "c", "b", false), backends.ErrExist)
	s.hasContent("the source of a refused rename", "c", "A")
	s.hasContent("the target of a refused rename", "b", "BB")

	if err := s.b.Rename(s.ctx, "c", "b", true); err != nil {
		s.Fatalf("Rename onto a file with overwrite: %v", err)
	}
	s.gone("the source of a rename over a file", "c")
	s.hasContent("a file replaced by a rename", "b", "A")
	s.checkFile("Stat of a file replaced by a rename", s.stat("b"), "b", 1)

	if err := s.b.Rename(s.ctx, "b", "sub/b", false); err != nil {
		s.Fatalf("Rename into a directory: %v", err)
	}
	s.hasContent("a file moved into a directory", "sub/b", "A")
	s.wantNames("after a move into sub", "", "sub")

	s.wantErr("Rename into a missing directory", s.b.Rename(s.ctx, "sub/b", "no/such/b", false), backends.ErrNotFound)
	s.wantErr("Rename into a missing directory with overwrite", s.b.Rename(s.ctx, "sub/b", "no/such/b", true), backends.ErrNotFound)
	s.hasContent("the source of a rename into a missing directory", "sub/b", "A")
	s.gone("after a rename into it", "no")

	if err := s.b.Rename(s.ctx, "sub/b", "sub/b", true); err != nil {
		s.Errorf("Rename of a file onto itself: %v", err)
	}
	s.hasContent("a file renamed onto itself", "sub/b", "A")
}

// testRenameDir: a directory moves with all below it; onto an empty
// directory only with overwrite; never onto a full directory (ErrNotEmpty or
// ErrExist), a file onto a directory (ErrIsDir) nor a directory onto a file
// (ErrNotDir); never into itself, and the root never moves.
func testRenameDir(s *suite) {
	s.mkdir("src")
	s.put("src/inner", "I")
	s.mkdir("src/sub")
	s.put("src/sub/deep", "D")
	if err := s.b.Rename(s.ctx, "src", "dst", false); err != nil {
		s.Fatalf("Rename of a directory: %v", err)
	}
	s.gone("the source of a directory rename", "src")
	s.wantNames("a renamed directory", "dst", "inner", "sub")
	s.hasContent("a file in a renamed directory", "dst/inner", "I")
	s.hasContent("a file deep in a renamed directory", "dst/sub/deep", "D")

	s.mkdir("empty")
	s.wantErr("Rename onto an empty directory without overwrite", s.b.Rename(s.ctx, "dst", "empty", false), backends.ErrExist)
	s.hasContent("after a refused rename", "dst/inner", "I")
	if err := s.b.Rename(s.ctx, "dst", "empty", true); err != nil {
		s.Fatalf("Rename onto an empty directory with overwrite: %v", err)
	}
	s.gone("the source of a rename onto an empty directory", "dst")
	s.hasContent("a directory renamed onto an empty one", "empty/sub/deep", "D")

	s.mkdir("full")
	s.put("full/keep", "K")
	s.wantErr("Rename onto a full directory", s.b.Rename(s.ctx, "empty", "full", true), backends.ErrNotEmpty, backends.ErrExist)
	s.hasContent("the target of a refused rename", "full/keep", "K")
	s.hasContent("the source of a refused rename", "empty/inner", "I")

	s.put("f", "F")
	s.wantErr("Rename of a file onto a directory", s.b.Rename(s.ctx, "f", "full", true), backends.ErrIsDir)
	s.wantErr("Rename of a directory onto a file", s.b.Rename(s.ctx, "full", "f", true), backends.ErrNotDir)
	s.hasContent("after refused renames", "f", "F")
	s.hasContent("after refused renames", "full/keep", "K")

	if err := s.b.Rename(s.ctx, "full", "full/inside", false); err == nil {
		s.Errorf("Rename of a directory into itself succeeded")
	}
	s.hasContent("after a rename of its directory into itself", "full/keep", "K")
	s.gone("after a rename of its directory into itself", "full/inside")

	for _, c := range [][2]string{{"", "moved root"}, {"/", "moved root"}, {"full", ""}} {
		if err := s.b.Rename(s.ctx, c[0], c[1], true); err == nil {
			s.Errorf("Rename(%q, %q) succeeded; the root never moves", c[0], c[1])
		}
	}
	s.wantNames("the root after renames of it", "", "empty", "full", "f")
	s.hasContent("after renames of the root", "full/keep", "K")
}
