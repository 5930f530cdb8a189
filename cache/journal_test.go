package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// newTestJournal returns a loaded journal in a fresh directory and a
// function that writes a staging file and returns its name.
func newTestJournal(t *testing.T) (*Journal, func(name, content string) string) {
	t.Helper()
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	os.Mkdir(staging, 0o700)
	j, err := openJournal(filepath.Join(dir, "journal"), staging)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(); err != nil {
		t.Fatal(err)
	}
	mk := func(name, content string) string {
		if err := os.WriteFile(filepath.Join(staging, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	return j, mk
}

// reopen is the next mount's journal over the same directories; without a
// Close first it is the journal after a kill -9.
func reopen(t *testing.T, j *Journal) (*Journal, LoadResult) {
	t.Helper()
	j2, err := openJournal(j.dir, j.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := j2.Load()
	if err != nil {
		t.Fatal(err)
	}
	return j2, res
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestJournalRoundTripAndOrder(t *testing.T) {
	j, mk := newTestJournal(t)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 678, time.UTC)
	mode := os.FileMode(0o640)
	recs := []Record{
		{Path: "b/second", Data: mk("d2", "two"), Size: 3, Create: true},
		{Path: "a/first", Data: mk("d1", "first"), Size: 5, Base: `W/"x"`, Meta: backends.Meta{MTime: &mt, Mode: &mode, SHA256: sum("first")}},
	}
	for i := range recs {
		if err := j.Commit(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	mk("orphan", "never closed")
	j2, res := reopen(t, j)
	if len(res.Quarantined) != 0 || len(res.Dropped) != 0 {
		t.Fatalf("load after kill -9: quarantined %v, dropped %v", res.Quarantined, res.Dropped)
	}
	got := res.Records
	if len(got) != 2 || got[0].Path != "b/second" || got[1].Path != "a/first" {
		t.Fatalf("records not in commit order: %+v", got)
	}
	r := got[1]
	if r.Base != `W/"x"` || r.Size != 5 || r.Meta.MTime == nil || !r.Meta.MTime.Equal(mt) || *r.Meta.Mode != 0o640 || r.Meta.SHA256 != sum("first") || r.Sum != sum("first") {
		t.Fatalf("record changed on the way: %+v %+v", r, r.Meta)
	}
	if got[0].Sum != sum("two") {
		t.Fatalf("a record committed without a hash got sum %q, want the staging file's", got[0].Sum)
	}
	if len(res.Orphans) != 1 || filepath.Base(res.Orphans[0]) != "orphan" {
		t.Fatalf("orphans %v, want the unnamed staging file", res.Orphans)
	}
	next := Record{Path: "c", Data: mk("d3", "")}
	if err := j2.Commit(&next); err != nil || next.Seq <= got[1].Seq {
		t.Fatalf("sequence after reload: %d (last %d), %v", next.Seq, got[1].Seq, err)
	}
}

// A close costs no sync at all; one Flush makes a whole batch of closes
// durable with one sync per staging file and one of the segment.
func TestJournalGroupCommit(t *testing.T) {
	j, mk := newTestJournal(t)
	const n = 50
	files, dirs := fileSyncs.Load(), dirSyncs.Load()
	for i := range n {
		r := Record{Path: fmt.Sprintf("f%d", i), Data: mk(fmt.Sprintf("d%d", i), "x"), Size: 1}
		if err := j.Commit(&r); err != nil {
			t.Fatal(err)
		}
		if err := j.Update(Record{Seq: r.Seq, Path: fmt.Sprintf("g%d", i), Data: r.Data, Size: 1, Sum: r.Sum}); err != nil {
			t.Fatal(err)
		}
	}
	if f, d := fileSyncs.Load()-files, dirSyncs.Load()-dirs; f != 0 || d != 0 {
		t.Fatalf("%d commits and renames synced %d files and %d directories; want none before the group commit", n, f, d)
	}
	j.mu.Lock()
	j.newData = true // as CreateData does
	j.mu.Unlock()
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	if f, d := fileSyncs.Load()-files, dirSyncs.Load()-dirs; f != n+1 || d != 1 {
		t.Fatalf("one group commit of %d files synced %d files and %d directories; want %d and 1", n, f, d, n+1)
	}
	files = fileSyncs.Load()
	if err := j.Flush(); err != nil || fileSyncs.Load() != files {
		t.Fatalf("a flush with nothing new synced %d files (%v)", fileSyncs.Load()-files, err)
	}
	_, res := reopen(t, j)
	if len(res.Records) != n || res.Records[n-1].Path != fmt.Sprintf("g%d", n-1) {
		t.Fatalf("after reload: %d records, want %d renamed ones", len(res.Records), n)
	}
}

func TestJournalQuarantinesDamagedRecordsAndKeepsTheirData(t *testing.T) {
	j, mk := newTestJournal(t)
	good := Record{Path: "good", Data: mk("d1", "x"), Size: 1}
	bad := Record{Path: "bad", Data: mk("d2", "precious"), Size: 8}
	after := Record{Path: "after", Data: mk("d3", "later"), Size: 5}
	for _, r := range []*Record{&good, &bad, &after} {
		if err := j.Commit(r); err != nil {
			t.Fatal(err)
		}
	}
	seg := filepath.Join(j.dir, segName(j.segNo))
	body, _ := os.ReadFile(seg)
	os.WriteFile(seg, []byte(strings.Replace(string(body), `"bad"`, `"bat"`, 1)), 0o600)

	_, res := reopen(t, j)
	if len(res.Records) != 2 || res.Records[0].Path != "good" || res.Records[1].Path != "after" {
		t.Fatalf("records %+v, want the two readable ones", res.Records)
	}
	// The damaged segment and the staging file no readable record names.
	if len(res.Quarantined) != 2 || len(res.Orphans) != 0 {
		t.Fatalf("quarantined %v, orphans %v; want the segment and d2, nothing deleted", res.Quarantined, res.Orphans)
	}
	if data, err := os.ReadFile(filepath.Join(j.dir, quarantineDir, "d2")); err != nil || string(data) != "precious" {
		t.Fatalf("data of a damaged record: %q %v; it must be kept", data, err)
	}
	if why, _ := os.ReadFile(filepath.Join(j.dir, quarantineDir, "d2.why")); !strings.Contains(string(why), "not uploaded") {
		t.Fatalf("quarantine note %q does not say what happened", why)
	}
}

// A power cut in the middle of an append leaves a torn frame at the tail:
// it is dropped without a word of damage, and the staging files that no
// record names are kept (they may be the torn record's).
func TestJournalDropsTornTail(t *testing.T) {
	j, mk := newTestJournal(t)
	a := Record{Path: "a", Data: mk("d1", "aaa"), Size: 3}
	b := Record{Path: "b", Data: mk("d2", "bbb"), Size: 3}
	j.Commit(&a)
	j.Commit(&b)
	seg := filepath.Join(j.dir, segName(j.segNo))
	fi, _ := os.Stat(seg)
	os.Truncate(seg, fi.Size()-7)

	j2, res := reopen(t, j)
	if len(res.Records) != 1 || res.Records[0].Path != "a" || len(res.Dropped) != 1 {
		t.Fatalf("records %+v, dropped %v; want a, and the torn tail reported", res.Records, res.Dropped)
	}
	if len(res.Quarantined) != 1 || filepath.Base(res.Quarantined[0]) != "d2" {
		t.Fatalf("quarantined %v; want d2 kept", res.Quarantined)
	}
	// Appends go on after the valid frames.
	c := Record{Path: "c", Data: mk("d3", "c"), Size: 1}
	if err := j2.Commit(&c); err != nil {
		t.Fatal(err)
	}
	_, res = reopen(t, j2)
	if len(res.Records) != 2 || res.Records[1].Path != "c" || len(res.Dropped) != 0 {
		t.Fatalf("after a commit on the repaired journal: %+v, dropped %v", res.Records, res.Dropped)
	}
}

// A staging file whose bytes are not what its record committed is never
// handed to the uploader: it goes to quarantine with a note.
func TestJournalQuarantinesDataThatDiffersFromItsRecord(t *testing.T) {
	j, mk := newTestJournal(t)
	r := Record{Path: "dir/f", Data: mk("d1", "committed"), Size: 9}
	short := Record{Path: "short", Data: mk("d2", "12345"), Size: 5}
	gone := Record{Path: "gone", Data: mk("d3", "x"), Size: 1}
	for _, rec := range []*Record{&r, &short, &gone} {
		j.Commit(rec)
	}
	mk("d1", "COMMITTED") // same size, other bytes: a torn rewrite
	mk("d2", "12")
	os.Remove(filepath.Join(j.dataDir, "d3"))

	_, res := reopen(t, j)
	if len(res.Records) != 0 {
		t.Fatalf("records %+v handed on; want none", res.Records)
	}
	if len(res.Quarantined) != 2 || len(res.Dropped) != 1 || !strings.Contains(res.Dropped[0], "gone") {
		t.Fatalf("quarantined %v, dropped %v", res.Quarantined, res.Dropped)
	}
	why, _ := os.ReadFile(filepath.Join(j.dir, quarantineDir, "d1.why"))
	if !strings.Contains(string(why), "dir/f") || !strings.Contains(string(why), sum("committed")) {
		t.Fatalf("quarantine note %q does not name the file and the hash", why)
	}
	if len(j.Quarantined()) != 2 {
		t.Fatalf("Quarantined() = %v", j.Quarantined())
	}
}

func TestJournalKeepsNewerRecordOfAPath(t *testing.T) {
	j, mk := newTestJournal(t)
	old := Record{Path: "p", Data: mk("d", "v1"), Size: 2}
	j.Commit(&old)
	newer := Record{Path: "p", Data: mk("e", "v22"), Size: 3}
	j.Commit(&newer) // a crash before the old record's removal
	_, res := reopen(t, j)
	if len(res.Records) != 1 || res.Records[0].Seq != newer.Seq {
		t.Fatalf("records %+v, want only the newer", res.Records)
	}
}

// A clean close marks the journal: the next mount trusts the staging files
// and reads none of them.
func TestJournalCleanCloseAndLegacyRecords(t *testing.T) {
	j, mk := newTestJournal(t)
	r := Record{Path: "p", Data: mk("d", "abc"), Size: 3}
	j.Commit(&r)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A record file of the format before segments.
	legacy := journalRecord{Record: Record{Seq: 40, Path: "old", Data: mk("o", "old"), Size: 3}}
	line, _ := json.Marshal(legacy)
	os.WriteFile(filepath.Join(j.dir, "0000000000000028.rec"), []byte(fmt.Sprintf("%s\n%x\n", line, crc32.Checksum(line, crcTable))), 0o600)
	mk("d", "xyz") // unnoticed after a clean close: same size
	j2, res := reopen(t, j)
	if len(res.Records) != 2 || res.Records[0].Path != "p" || res.Records[1].Path != "old" || len(res.Quarantined) != 0 {
		t.Fatalf("records %+v, quarantined %v", res.Records, res.Quarantined)
	}
	if names, _ := filepath.Glob(filepath.Join(j.dir, "*.rec")); len(names) != 0 {
		t.Fatalf("legacy record files left after the load: %v", names)
	}
	next := Record{Path: "n", Data: mk("n", "")}
	if j2.Commit(&next); next.Seq <= 40 {
		t.Fatalf("sequence %d after a legacy record of 40", next.Seq)
	}
}

// Records that are long gone do not make the journal grow without bound.
func TestJournalCompacts(t *testing.T) {
	j, mk := newTestJournal(t)
	data := mk("d", "x")
	for i := range 40000 {
		r := Record{Path: fmt.Sprintf("dir/file-%06d", i), Data: data, Size: 1, Sum: sum("x")}
		if err := j.Commit(&r); err != nil {
			t.Fatal(err)
		}
		if err := j.Delete(r.Seq); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if err := j.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	j.Flush()
	segs, _ := filepath.Glob(filepath.Join(j.dir, "*"+segmentSuffix))
	var total int64
	for _, s := range segs {
		fi, _ := os.Stat(s)
		total += fi.Size()
	}
	if len(segs) != 1 || total > compactMin+1<<20 {
		t.Fatalf("after 40,000 commits and deletes: %d segments, %d bytes", len(segs), total)
	}
	last := Record{Path: "last", Data: data, Size: 1}
	j.Commit(&last)
	if _, res := reopen(t, j); len(res.Records) != 1 || res.Records[0].Path != "last" {
		t.Fatalf("after compaction: %+v", res.Records)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	frame, _ := encodeFrame(journalEntry{Op: opPut}, Record{Seq: 7, Path: "a/b", Data: "stage-1", Size: 3})
	f.Add(frame)
	del, _ := encodeFrame(journalEntry{Op: opDel, Seq: 3}, Record{})
	f.Add(del)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, n, ok := decodeFrame(data)
		if !ok {
			return
		}
		if n > len(data) || n < frameHeader {
			t.Fatalf("frame length %d of %d bytes", n, len(data))
		}
		if e.Op == opPut {
			if err := checkRecord(e.Rec.Record); err != nil {
				t.Fatalf("accepted an invalid record: %v", err)
			}
		}
		entries, _ := parseSegment(data, true)
		if len(entries) == 0 {
			t.Fatal("a segment starting with a valid frame parsed to nothing")
		}
	})
}
