package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Size of the tree TestRsyncHashes backs up: 2,000 files of mixed sizes,
// 96.6 MiB with this seed, as the issue asks.
const (
	hashTreeFiles = 2000
	hashTreeSeed  = 2024
)

// TestRsyncHashes is the nightly-backup story with content hashes, on each
// server:
//
//  1. rsync -a of a tree of 2,000 mixed files (96.6 MiB) onto the
//     mount, then `cloudmount sync`: the server has the tree, and a second
//     rsync transfers nothing;
//  2. every source file is touched: rsync rewrites every file, yet the
//     server receives no PUT of a file under the tree (the content is
//     the same, only the mtimes are stored: PROPPATCH on Apache, PUTs of
//     the metadata files on rclone and nginx); a third rsync transfers
//     nothing;
//  3. a second mount with an empty cache directory: rsync -a --checksum
//     transfers nothing and uploads nothing, and getfattr shows
//     user.cloudmount.sha256 of every file equal to the sha256 of its source;
//  4. a file replaced on the server behind the mount's back gets its new
//     hash once the mount sees the new version (1 s attribute and
//     directory cache times on the second mount).
func TestRsyncHashes(t *testing.T) {
	needTool(t, "rsync")
	needTool(t, "getfattr")
	eachServer(t, func(t *testing.T, srv *Server) {
		start := time.Now()
		src := filepath.Join(t.TempDir(), "src")
		files, total := makeHashTree(t, src, hashTreeFiles, hashTreeSeed)
		t.Logf("source tree: %d files, %.1f MiB", len(files), float64(total)/(1<<20))

		m := mountServer(t, srv, MountOptions{})
		rsync := func(t *testing.T, m *Mount, label string, extra ...string) int {
			t.Helper()
			mark := len(srv.Requests(t))
			began := time.Now()
			args := append([]string{"-a", "--stats"}, extra...)
			out := run(t, "", "rsync", append(args, src+"/", m.Path("backup")+"/")...)
			n := rsyncTransferred(t, out)
			rs := time.Since(began)
			synced := m.Sync(t)
			t.Logf("FIGURE: rsync %s onto %s, %s: %d of %d files transferred; rsync %.1fs, then sync %.1fs; server requests: %s",
				strings.Join(args, " "), srv.Kind, label, n, len(files), rs.Seconds(), synced.Seconds(), methodCounts(srv.Requests(t)[mark:]))
			return n
		}

		// 1. The first backup and one with nothing to do.
		if n := rsync(t, m, "first run"); n != len(files) {
			t.Errorf("first run transferred %d files, want %d", n, len(files))
		}
		if err := treeDiff(src, srv.Path("backup"), false, srv.Hidden); err != nil {
			t.Fatalf("after rsync and cloudmount sync, the server lacks the tree: %v", err)
		}
		mark := len(srv.Requests(t))
		if n := rsync(t, m, "second run"); n != 0 {
			t.Errorf("second run transferred %d files, want 0", n)
		}
		if puts, _ := putsUnder(srv.Requests(t)[mark:], "/backup/"); puts != 0 {
			t.Errorf("the second run sent %d PUTs to the server, want 0", puts)
		}

		// 2. New mtimes, same content: metadata only.
		bash(t, src, "find . -type f -exec touch {} +")
		touched := mtimeOf(t, filepath.Join(src, files[0].Rel))
		mark = len(srv.Requests(t))
		if n := rsync(t, m, "after touch"); n != len(files) {
			t.Errorf("after touch, rsync transferred %d files, want all %d (their mtimes changed)", n, len(files))
		}
		reqs := srv.Requests(t)[mark:]
		puts, sent := putsUnder(reqs, "/backup/")
		patches := countUnder(reqs, "PROPPATCH", "/backup/")
		metaPuts := 0
		for _, r := range reqs {
			if r.Method == "PUT" && isMetaFilePath(r.Path) {
				metaPuts++
			}
		}
		t.Logf("FIGURE: rsync after touch on %s: %d PUTs (%d bytes received by the server), %d PROPPATCHes, %d PUTs of metadata files, %d requests in all",
			srv.Kind, puts, sent, patches, metaPuts, len(reqs))
		if puts != 0 {
			t.Errorf("after touch, the server received %d PUTs under /backup/ (%s), want 0: the content did not change",
				puts, firstPuts(reqs, "/backup/", 5))
		}
		if srv.DeadProps {
			// The new mtimes are stored on the server, not only in the cache.
			if patches < len(files) {
				t.Errorf("after touch, %d PROPPATCHes for %d files: the new mtimes are not all on the server", patches, len(files))
			}
			for name, mt := range srv.ServerMTimes(t, "backup") {
				if !mt.Equal(mtimeOf(t, filepath.Join(src, name))) {
					t.Errorf("server's stored mtime of backup/%s is %v, want the touched %v", name, mt, touched)
					break
				}
			}
		}
		compareTree(t, src, m.Path("backup"), true, nil)
		if n := rsync(t, m, "third run"); n != 0 {
			t.Errorf("third run transferred %d files, want 0", n)
		}

		// 3. Another mount, empty cache: the same tree, known by its hashes.
		m2 := mountServer(t, srv, MountOptions{Args: []string{"--dir-cache-time=1s", "--attr-timeout=1s"}})
		mark = len(srv.Requests(t))
		if n := rsync(t, m2, "second mount, empty cache", "--checksum"); n != 0 {
			t.Errorf("rsync --checksum from a second mount with an empty cache transferred %d files, want 0", n)
		}
		if puts, _ := putsUnder(srv.Requests(t)[mark:], "/backup/"); puts != 0 {
			t.Errorf("rsync --checksum on the second mount sent %d PUTs, want 0", puts)
		}
		mark = len(srv.Requests(t))
		began := time.Now()
		got := getfattrSHA256(t, m2.Path("backup"), files)
		bad := 0
		for _, f := range files {
			want, err := sha256File(filepath.Join(src, f.Rel))
			if err != nil {
				t.Fatal(err)
			}
			if got[f.Rel] != want {
				if bad++; bad <= 5 {
					t.Errorf("getfattr user.cloudmount.sha256 of %s on the second mount: %q, sha256sum of the source: %s", f.Rel, got[f.Rel], want)
				}
			}
		}
		if bad > 5 {
			t.Errorf("... %d files in all have a wrong or missing hash", bad)
		}
		t.Logf("FIGURE: getfattr user.cloudmount.sha256 of %d files on a mount with an empty cache (%s): %.1fs; server requests: %s",
			len(files), srv.Kind, time.Since(began).Seconds(), methodCounts(srv.Requests(t)[mark:]))

		// 4. A change behind the mount's back.
		var f treeFile
		for _, c := range files {
			if c.Size > 1000 && c.Size < 100<<10 {
				f = c
				break
			}
		}
		if f.Rel == "" {
			t.Fatal("the tree has no file between 1 and 100 KB to change")
		}
		rel := filepath.ToSlash(filepath.Join("backup", f.Rel))
		old := got[f.Rel]
		data, err := os.ReadFile(filepath.Join(src, f.Rel))
		if err != nil {
			t.Fatal(err)
		}
		for i := range data {
			data[i] ^= 0x5a // same size, other content
		}
		changed := sha256Hex(data)
		srv.WriteFile(t, rel, data, time.Now().Add(-time.Hour).Truncate(time.Second))
		began = time.Now()
		eventually(t, 20*time.Second, func() error {
			out, err := runCmd("", time.Minute, "getfattr", "--absolute-names", "--only-values", "-n", "user.cloudmount.sha256", m2.Path(rel))
			if err != nil {
				return fmt.Errorf("getfattr %s: %v %s", rel, err, out)
			}
			if out != changed {
				return fmt.Errorf("getfattr %s after a change on the server: %q (before the change: %q), want %q", rel, out, old, changed)
			}
			return nil
		})
		t.Logf("FIGURE: the mount (1s cache times) shows the new hash of a file changed on %s after %.1fs",
			srv.Kind, time.Since(began).Seconds())
		wantFile(t, m2.Path(rel), data)
		t.Logf("%s: %.0fs in all", srv.Kind, time.Since(start).Seconds())
	})
}

// makeHashTree writes a deterministic tree of n files under root: about 8%
// empty, half up to 4 KiB, a third up to 132 KiB and 3% up to 1.25 MiB
// (about 46 KiB a file on average), in forty nested directories with
// awkward names, modes 0644/0600/0755/0640 and mtimes in the past with
// nanoseconds. It returns the files and their total size.
func makeHashTree(t testing.TB, root string, n int, seed uint64) ([]treeFile, int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	dirs := []string{""}
	for len(dirs) < 40 {
		parent := dirs[rng.IntN(len(dirs))]
		if strings.Count(parent, string(filepath.Separator)) >= 2 {
			continue
		}
		dirs = append(dirs, filepath.Join(parent, fmt.Sprintf("d%02d %s", len(dirs), treeNames[rng.IntN(len(treeNames))])))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	buf := make([]byte, 1280<<10)
	files := make([]treeFile, 0, n)
	var total int64
	for i := 0; i < n; i++ {
		var size int
		switch r := rng.IntN(100); {
		case r < 8:
			size = 0
		case r < 60:
			size = 1 + rng.IntN(4096)
		case r < 97:
			size = 4096 + rng.IntN(128<<10)
		default:
			size = 256<<10 + rng.IntN(1<<20)
		}
		f := treeFile{
			Rel:   filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("%04d %s.bin", i, treeNames[rng.IntN(len(treeNames))])),
			Size:  size,
			Mode:  []os.FileMode{0o644, 0o644, 0o600, 0o755, 0o640}[rng.IntN(5)],
			Mtime: base.Add(time.Duration(rng.Int64N(int64(3 * 365 * 24 * time.Hour)))),
		}
		for j := 0; j < size; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < size; k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		p := filepath.Join(root, f.Rel)
		if err := os.WriteFile(p, buf[:size], f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.Mtime, f.Mtime); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		total += int64(size)
	}
	return files, total
}

// putsUnder counts the PUT requests among reqs for paths under dir
// ("/backup/") and the bytes the server received with them (Apache only;
// rclone does not log sizes).
func putsUnder(reqs []Request, dir string) (n int, received int64) {
	for _, r := range reqs {
		if r.Method == "PUT" && strings.HasPrefix(r.Path, dir) && !isMetaFilePath(r.Path) {
			n++
			if r.Received > 0 {
				received += r.Received
			}
		}
	}
	return n, received
}

// isMetaFilePath reports whether p is that of a metadata file (written
// with metadata, not content).
func isMetaFilePath(p string) bool {
	return p == "/"+metaFileName || strings.HasSuffix(p, "/"+metaFileName)
}

// countUnder counts the requests with method for paths under dir.
func countUnder(reqs []Request, method, dir string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && strings.HasPrefix(r.Path, dir) {
			n++
		}
	}
	return n
}

// methodCounts sums up requests by method: "PROPFIND 12, PUT 3".
func methodCounts(reqs []Request) string {
	counts := map[string]int{}
	for _, r := range reqs {
		counts[r.Method]++
	}
	var s []string
	for m, n := range counts {
		s = append(s, fmt.Sprintf("%s %d", m, n))
	}
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// firstPuts names up to max PUTs under dir, for messages.
func firstPuts(reqs []Request, dir string, max int) string {
	var s []string
	for _, r := range reqs {
		if r.Method == "PUT" && strings.HasPrefix(r.Path, dir) && len(s) < max {
			s = append(s, fmt.Sprintf("%s (%d bytes)", r.Path, r.Received))
		}
	}
	return strings.Join(s, ", ")
}

// getfattrSHA256 reads user.cloudmount.sha256 of files under dir with
// getfattr, as a user would, a few hundred files per call, and returns it
// by the files' Rel.
func getfattrSHA256(t testing.TB, dir string, files []treeFile) map[string]string {
	t.Helper()
	byPath := make(map[string]string, len(files))
	for _, f := range files {
		byPath[filepath.Join(dir, f.Rel)] = f.Rel
	}
	got := make(map[string]string, len(files))
	const batch = 250
	for i := 0; i < len(files); i += batch {
		args := []string{"--absolute-names", "-n", "user.cloudmount.sha256", "--"}
		for _, f := range files[i:min(i+batch, len(files))] {
			args = append(args, filepath.Join(dir, f.Rel))
		}
		// A file without the attribute makes getfattr exit 1: what it
		// printed for the others still counts, and the comparison names
		// the files that lack it.
		out, err := runCmd("", 10*time.Minute, "getfattr", args...)
		if err != nil {
			t.Logf("getfattr: %v", err)
		}
		var cur string
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, "# file: "):
				cur = byPath[unescapeGetfattr(strings.TrimPrefix(line, "# file: "))]
			case strings.HasPrefix(line, "user.cloudmount.sha256="):
				if cur == "" {
					t.Fatalf("getfattr printed a value for a file it did not name:\n%s", out)
				}
				got[cur] = strings.Trim(strings.TrimPrefix(line, "user.cloudmount.sha256="), `"`)
			case line != "":
				if cur == "" || !strings.HasPrefix(line, "# ") {
					t.Logf("getfattr: %s", line)
				}
			}
		}
	}
	return got
}

var getfattrEscape = regexp.MustCompile(`\\[0-3][0-7][0-7]`)

// unescapeGetfattr undoes getfattr's octal escapes in file names ("\134"
// for a backslash, "\012" for a newline).
func unescapeGetfattr(s string) string {
	return getfattrEscape.ReplaceAllStringFunc(s, func(e string) string {
		n, _ := strconv.ParseUint(e[1:], 8, 8)
		return string([]byte{byte(n)})
	})
}

// sha256Hex is the hex sha256 of data.
func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
