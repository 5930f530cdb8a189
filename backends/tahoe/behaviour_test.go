package tahoe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/internal/httpread"
)

// put stores content at p or fails the test.
func put(t *testing.T, b *Backend, p, content string, opts backends.PutOptions) backends.Entry {
	t.Helper()
	e, err := b.Put(t.Context(), p, strings.NewReader(content), int64(len(content)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", p, err)
	}
	return e
}

// content reads p whole or fails the test.
func content(t *testing.T, b *Backend, p string) string {
	t.Helper()
	rc, err := b.Read(t.Context(), p, 0, -1)
	if err != nil {
		t.Fatalf("Read(%q): %v", p, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Read(%q): %v", p, err)
	}
	return string(data)
}

// names lists p.
func names(t *testing.T, b *Backend, p string) map[string]backends.Entry {
	t.Helper()
	es, err := b.List(t.Context(), p)
	if err != nil {
		t.Fatalf("List(%q): %v", p, err)
	}
	out := map[string]backends.Entry{}
	for _, e := range es {
		out[e.Name] = e
	}
	return out
}

// TestUncoordinated: a directory change that collides with another
// writer's is tried again and succeeds; one that keeps colliding fails
// with ErrPrecondition; one that went through although reported as a
// collision is taken as done.
func TestUncoordinated(t *testing.T) {
	f := newFakeNode(t)
	var logs syncBuffer
	b := open(t, f, f.newDir(), &logs)
	ctx := t.Context()

	f.uncoordinated.Store(2)
	put(t, b, "a", "retried twice", backends.PutOptions{})
	if got := content(t, b, "a"); got != "retried twice" {
		t.Errorf("after two collisions: %q", got)
	}
	if !strings.Contains(logs.String(), "another client changed the directory at the same time") {
		t.Errorf("the retries were not logged")
	}

	f.uncoordinated.Store(100)
	_, err := b.Put(ctx, "b", strings.NewReader("never"), 5, backends.PutOptions{})
	if !errors.Is(err, backends.ErrPrecondition) || !strings.Contains(err.Error(), "another client changed the directory") {
		t.Errorf("Put that keeps colliding: %v", err)
	}
	if left := f.uncoordinated.Load(); left != 100-uncoordinatedAttempts {
		t.Errorf("%d attempts, want %d", 100-left, uncoordinatedAttempts)
	}
	f.uncoordinated.Store(0)
	if _, ok := names(t, b, "")["b"]; ok {
		t.Errorf("a Put that failed linked its file")
	}

	// Changes that went through but were reported as collisions.
	f.applied.Store(true)
	defer f.applied.Store(false)
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"a create", func() error {
			_, err := b.Put(ctx, "c", strings.NewReader("created"), 7, backends.PutOptions{IfNoneMatch: true})
			return err
		}},
		{"an overwrite", func() error {
			_, err := b.Put(ctx, "c", strings.NewReader("replaced"), 8, backends.PutOptions{})
			return err
		}},
		{"a mkdir", func() error { return b.Mkdir(ctx, "d") }},
		{"a rename within a directory", func() error { return b.Rename(ctx, "a", "a2", false) }},
		{"a rename across directories", func() error { return b.Rename(ctx, "a2", "d/a3", false) }},
		{"a rename over a file", func() error { return b.Rename(ctx, "c", "d/a3", true) }},
		{"a remove", func() error { return b.Remove(ctx, "d/a3") }},
		{"a remove of a directory", func() error { return b.Remove(ctx, "d") }},
	} {
		f.uncoordinated.Store(1)
		if err := c.call(); err != nil {
			t.Errorf("%s reported as a collision although it went through: %v", c.name, err)
		}
	}
	if got := names(t, b, ""); len(got) != 0 {
		t.Errorf("after the changes the root holds %v", got)
	}
	f.checkClean(t)
}

// TestMutableFile: a mutable file (made by another tool) is listed with
// its size, read, and replaced by an immutable one on Put.
func TestMutableFile(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	b := open(t, f, root, io.Discard)
	f.addMutable(root, "m", []byte("mutable content"))
	e := names(t, b, "")["m"]
	if e.Size != 15 || e.Version == "" || e.IsDir {
		t.Fatalf("List: the mutable file is %+v", e)
	}
	st, err := b.Stat(t.Context(), "m")
	if err != nil || st.Version != e.Version || st.Size != 15 {
		t.Errorf("Stat = %+v, %v; List gave %+v", st, err, e)
	}
	if got := content(t, b, "m"); got != "mutable content" {
		t.Errorf("Read: %q", got)
	}
	f.mu.Lock()
	f.nodes[root].children["m"].node.data = []byte("longer mutable content")
	f.mu.Unlock()
	if st2, _ := b.Stat(t.Context(), "m"); st2.Version == st.Version || st2.Size != 22 {
		t.Errorf("after a rewrite by another client: %+v (was %+v)", st2, st)
	}
	e2 := put(t, b, "m", "now immutable", backends.PutOptions{IfMatch: mustStat(t, b, "m").Version})
	if got := content(t, b, "m"); got != "now immutable" || e2.Size != 13 {
		t.Errorf("after a Put over the mutable file: %q, %+v", got, e2)
	}
}

func mustStat(t *testing.T, b *Backend, p string) backends.Entry {
	t.Helper()
	e, err := b.Stat(t.Context(), p)
	if err != nil {
		t.Fatalf("Stat(%q): %v", p, err)
	}
	return e
}

// TestVersionIsCapHash: a file's Version is the SHA-256 of its cap, the
// same content gives the same Version (convergence), and no entry field
// holds a cap.
func TestVersionIsCapHash(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	b := open(t, f, root, io.Discard)
	big := strings.Repeat("convergent ", 20)
	e1 := put(t, b, "one", big, backends.PutOptions{})
	e2 := put(t, b, "two", big, backends.PutOptions{})
	if e1.Version != e2.Version {
		t.Errorf("the same content has two versions: %s, %s", e1.Version, e2.Version)
	}
	f.mu.Lock()
	cap := f.nodes[root].children["one"].node.ro
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(cap))
	if e1.Version != hex.EncodeToString(sum[:]) {
		t.Errorf("Version %s is not the SHA-256 of the cap", e1.Version)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e1.Version) {
		t.Errorf("Version %q", e1.Version)
	}
	_ = b.Mkdir(t.Context(), "dir")
	var logged syncBuffer
	debugLogger(&logged).Info("values", "backend", b, "config", testConfig(f, root, io.Discard))
	all := fmt.Sprintf("%+v %+v %+v %s %v %+v %#v %v %+v %#v %s", e1, mustStat(t, b, "one"), names(t, b, ""), b.String(),
		b, b, b, testConfig(f, root, io.Discard), testConfig(f, root, io.Discard), testConfig(f, root, io.Discard), logged.String())
	checkNoCaps(t, f, "the entries", all)
	if b.String() != "tahoe:"+Redact(root) {
		t.Errorf("String() = %q", b.String())
	}
}

// TestMetadataFromOtherTools: the mtime, ctime and stat fields tahoe
// backup writes are read; the keys of other tools survive a SetMeta; an
// mtime, hash and type stamped for a content another client replaced
// (through a path PUT, which keeps the user metadata) are not shown.
func TestMetadataFromOtherTools(t *testing.T) {
	f := newFakeNode(t)
	root := f.newDir()
	b := open(t, f, root, io.Discard)
	f.mu.Lock()
	n := f.immutableLocked([]byte(strings.Repeat("backed up ", 10)))
	f.nodes[root].children["backup.txt"] = &fedge{node: n, meta: updateMeta(nil, map[string]any{
		"mtime": 1600000000.25, "ctime": 1600000001.5, "st_mode": 0o100644, "st_uid": 1000, "st_gid": 100, "st_ino": 5,
	})}
	f.mu.Unlock()
	e := mustStat(t, b, "backup.txt")
	want := time.Unix(1600000000, 250000000)
	if !e.ModTime.Equal(want) || e.Meta.Mode == nil || *e.Meta.Mode != 0o644 || *e.Meta.UID != 1000 || *e.Meta.GID != 100 {
		t.Errorf("tahoe backup's metadata read as %+v", e)
	}
	mode := os.FileMode(0o600)
	e, err := b.SetMeta(t.Context(), "backup.txt", backends.Meta{Mode: &mode}, e.Version)
	if err != nil || *e.Meta.Mode != 0o600 || !e.ModTime.Equal(want) {
		t.Errorf("SetMeta(mode): %+v, %v (the mtime must stay)", e, err)
	}
	f.mu.Lock()
	meta := f.nodes[root].children["backup.txt"].meta
	f.mu.Unlock()
	if meta["st_ino"] != float64(5) || meta["ctime"] == 1600000001.5 {
		t.Errorf("after SetMeta the edge holds %v: st_ino must stay, ctime be now", meta)
	}

	// A file of cloudmount's, replaced by another client's path PUT.
	mt := time.Date(2001, 2, 3, 4, 5, 6, 789012000, time.UTC)
	h := sha256.Sum256([]byte("ours"))
	put(t, b, "s", "ours", backends.PutOptions{Meta: backends.Meta{MTime: &mt, Mode: &mode, SHA256: hex.EncodeToString(h[:]), Type: "symlink"}})
	if e := mustStat(t, b, "s"); !e.ModTime.Equal(mt) || e.Meta.Type != "symlink" {
		t.Fatalf("Stat after Put with metadata: %+v", e)
	}
	req, _ := http.NewRequest(http.MethodPut, f.url()+"uri/"+httpread.EscapeSegment(root)+"/s", strings.NewReader("theirs, longer"))
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the other client's PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	e = mustStat(t, b, "s")
	if e.Meta.SHA256 != "" || e.Meta.Type != "" || e.Meta.MTime != nil || e.ModTime.Equal(mt) {
		t.Errorf("the metadata of the replaced content is still shown: %+v", e)
	}
	if e.Meta.Mode == nil || *e.Meta.Mode != 0o600 {
		t.Errorf("the mode of the path went: %+v", e)
	}
	if time.Since(e.ModTime) > time.Minute {
		t.Errorf("ModTime %v is not linkmotime", e.ModTime)
	}
}

// TestNFCNames: Tahoe keeps names in NFC; a name in another form finds its
// NFC child.
func TestNFCNames(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	nfd, nfc := "cafe\u0301", "caf\u00e9"
	put(t, b, nfd, "x", backends.PutOptions{})
	if _, ok := names(t, b, "")[nfc]; !ok {
		t.Errorf("List: %v, want the NFC name", names(t, b, ""))
	}
	for _, p := range []string{nfd, nfc} {
		if e, err := b.Stat(t.Context(), p); err != nil || e.Name != p {
			t.Errorf("Stat(%q) = %+v, %v", p, e, err)
		}
	}
	put(t, b, nfc, "yy", backends.PutOptions{IfMatch: mustStat(t, b, nfd).Version})
	if err := b.Rename(t.Context(), nfd, nfc, false); err != nil {
		t.Errorf("Rename onto its own NFC form: %v", err)
	}
	if err := b.Remove(t.Context(), nfd); err != nil {
		t.Errorf("Remove(NFD): %v", err)
	}
	if got := names(t, b, ""); len(got) != 0 {
		t.Errorf("after Remove: %v", got)
	}
}

// TestRenameBlankNames: names with leading or trailing blanks, which
// relink would strip, are moved by hand, metadata and all.
func TestRenameBlankNames(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	ctx := t.Context()
	mode := os.FileMode(0o640)
	put(t, b, " lead", "L", backends.PutOptions{Meta: backends.Meta{Mode: &mode}})
	if err := b.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{" lead", "trail\t"}, {"trail\t", "d/ both "}, {"d/ both ", "plain"}, {"plain", "d/\nnewline"}} {
		if err := b.Rename(ctx, c[0], c[1], false); err != nil {
			t.Fatalf("Rename(%q, %q): %v", c[0], c[1], err)
		}
		e := mustStat(t, b, c[1])
		if got := content(t, b, c[1]); got != "L" || e.Meta.Mode == nil || *e.Meta.Mode != mode {
			t.Errorf("after Rename(%q, %q): %q, %+v", c[0], c[1], got, e)
		}
		if _, err := b.Stat(ctx, c[0]); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("after Rename(%q, %q) the source: %v", c[0], c[1], err)
		}
	}
	put(t, b, "x ", "X", backends.PutOptions{})
	if err := b.Rename(ctx, "x ", "d/\nnewline", false); !errors.Is(err, backends.ErrExist) {
		t.Errorf("Rename by hand onto a name taken: %v", err)
	}
	if err := b.Rename(ctx, "x ", "d/\nnewline", true); err != nil || content(t, b, "d/\nnewline") != "X" {
		t.Errorf("Rename by hand over a file: %v", err)
	}
}

// TestNoIntermediateDirectories: changes below a missing directory fail
// with ErrNotFound and create nothing (Tahoe would create the missing
// directories of a path PUT or POST).
func TestNoIntermediateDirectories(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	ctx := t.Context()
	put(t, b, "f", "F", backends.PutOptions{})
	if err := b.Mkdir(ctx, "x/y/z"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Mkdir below missing directories: %v", err)
	}
	if _, err := b.Put(ctx, "x/y/z/w", strings.NewReader("w"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Put below missing directories: %v", err)
	}
	if err := b.Rename(ctx, "f", "x/y/f", true); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Rename below missing directories: %v", err)
	}
	if err := b.Mkdir(ctx, "f/sub"); !errors.Is(err, backends.ErrNotDir) {
		t.Errorf("Mkdir below a file: %v", err)
	}
	if got := names(t, b, ""); len(got) != 1 {
		t.Errorf("the root holds %v, want f alone", got)
	}
}

// TestSetMetaRoot: the root has no edge to keep metadata on.
func TestSetMetaRoot(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	mode := os.FileMode(0o700)
	if _, err := b.SetMeta(t.Context(), "", backends.Meta{Mode: &mode}, ""); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("SetMeta of the root: %v", err)
	}
}

// TestReadChecks: replies that do not fit the range asked or the size
// known fail with ErrProtocol (or ErrUnavailable for a body cut short).
func TestReadChecks(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	put(t, b, "r", strings.Repeat("0123456789", 10), backends.PutOptions{})
	for _, c := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		kind  error
	}{
		{"another range", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 0-9/100")
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(206)
			_, _ = io.WriteString(w, "0123456789")
		}, backends.ErrProtocol},
		{"another size", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 10-19/101")
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(206)
			_, _ = io.WriteString(w, "0123456789")
		}, backends.ErrProtocol},
		{"a body cut short", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 10-19/100")
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(206)
			_, _ = io.WriteString(w, "01234")
		}, backends.ErrUnavailable},
		{"a Range ignored", func(w http.ResponseWriter) {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, strings.Repeat("0123456789", 10))
		}, backends.ErrProtocol},
		{"a 416 inside the file", func(w http.ResponseWriter) {
			w.WriteHeader(416)
			_, _ = io.WriteString(w, "First beyond end of file")
		}, backends.ErrProtocol},
	} {
		f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || r.URL.Query().Get("t") != "" {
				return false
			}
			c.serve(w)
			return true
		})
		rc, err := b.ReadSized(t.Context(), "r", 10, 10, 100)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", c.name, err, c.kind)
		}
	}
	f.setBefore(nil)
}

// TestListingLimits: a listing over its bounds is an error, never a
// truncated listing.
func TestListingLimits(t *testing.T) {
	j := `["dirnode", {"children": {"a": ["filenode", {"size": 1, "ro_uri": "URI:LIT:ge"}],
		"b": ["filenode", {"size": 1, "ro_uri": "URI:LIT:gi"}], "c": ["dirnode", {"ro_uri": "URI:DIR2-RO:aa:bb"}]},
		"rw_uri": "URI:DIR2:aa:bb", "mutable": true}]`
	l, err := decodeListing(strings.NewReader(j), 1<<20, 3, nil)
	if err != nil || l.count != 3 || len(l.children) != 3 || l.self.rw == "" {
		t.Fatalf("decodeListing: %+v, %v", l, err)
	}
	if _, err := decodeListing(strings.NewReader(j), 1<<20, 2, nil); !errors.Is(err, backends.ErrProtocol) ||
		!strings.Contains(err.Error(), "more than 2 children") {
		t.Errorf("over the children bound: %v", err)
	}
	if _, err := decodeListing(strings.NewReader(j), 100, 10, nil); !errors.Is(err, backends.ErrProtocol) ||
		!strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("over the bytes bound: %v", err)
	}
	l, err = decodeListing(strings.NewReader(j), 1<<20, 3, func(n string) bool { return n == "b" })
	if err != nil || l.count != 3 || len(l.children) != 1 || l.children[0].name != "b" {
		t.Errorf("decodeListing keeping b: %+v, %v", l, err)
	}
	for _, bad := range []string{``, `{}`, `["dirnode"]`, `["dirnode", {"children": []}]`, `["dirnode", {}] x`,
		`["dirnode", {"children": {"a": ["filenode"]}}]`, `["dirnode", {"children": {"a": ["filenode", {"size": -1}]}}]`} {
		if _, err := decodeListing(strings.NewReader(bad), 1<<20, 10, nil); !errors.Is(err, backends.ErrProtocol) {
			t.Errorf("decodeListing(%q): %v, want ErrProtocol", bad, err)
		}
	}
}

// TestTimes: times go to the node as float seconds with microseconds and
// come back as the same instant; other forms read too.
func TestTimes(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC),
		time.Date(2011, 12, 13, 14, 15, 16, 123456789, time.UTC),
		time.Unix(0, 0), time.Unix(-1, 500000000), time.Unix(-86400*365*20, 1000),
		time.Date(2200, 1, 1, 0, 0, 0, 999999000, time.UTC),
	} {
		s := formatTime(tm)
		got, ok := parseTime([]byte(s))
		if !ok || !got.Equal(tm.Truncate(time.Microsecond)) {
			t.Errorf("formatTime(%v) = %q, read back as %v", tm, s, got)
		}
	}
	for in, want := range map[string]time.Time{
		"1700000000":         time.Unix(1700000000, 0),
		"1700000000.5":       time.Unix(1700000000, 500000000),
		"1700000000.1234567": time.Unix(1700000000, 123457000),
		"1700000000.9999999": time.Unix(1700000001, 0),
		"1.7e9":              time.Unix(1700000000, 0),
		"1700000000.":        time.Unix(1700000000, 0),
		" 981173106.789012 ": time.Unix(981173106, 789012000),
		"-1.5":               time.Unix(-2, 500000000),
	} {
		if got, ok := parseTime([]byte(in)); !ok || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "null", `"1700000000"`, "1e300", "NaN", "abc", "1e11"} {
		if got, ok := parseTime([]byte(bad)); ok {
			t.Errorf("parseTime(%q) = %v, want none", bad, got)
		}
	}
}

// TestCancelledUpload: an upload whose context ends while it is sent
// fails with the context's error and links nothing.
func TestCancelledUpload(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	ctx, cancel := context.WithCancel(t.Context())
	r := &slowReader{left: 1 << 20, cancel: cancel, after: 64 << 10}
	_, err := b.Put(ctx, "c", r, 1<<20, backends.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled while sent: %v", err)
	}
	if _, ok := names(t, b, "")["c"]; ok {
		t.Errorf("a cancelled Put linked its file")
	}
}

// slowReader gives left bytes and cancels after the first after bytes.
type slowReader struct {
	left, read, after int
	cancel            context.CancelFunc
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.left, 4096)
	s.left -= n
	s.read += n
	if s.read >= s.after {
		s.cancel()
		time.Sleep(10 * time.Millisecond)
	}
	return n, nil
}
