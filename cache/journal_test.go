package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// newTestJournal returns a journal in a fresh directory and a function
// that creates staging files in it.
func newTestJournal(t *testing.T) (*Journal, func(name, content string) *os.File) {
	t.Helper()
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	os.Mkdir(staging, 0o700)
	j, err := openJournal(filepath.Join(dir, "journal"), staging)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name, content string) *os.File {
		f, err := os.Create(filepath.Join(staging, name))
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(content)
		t.Cleanup(func() { f.Close() })
		return f
	}
	return j, mk
}

func TestJournalRoundTripAndOrder(t *testing.T) {
	j, mk := newTestJournal(t)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 678, time.UTC)
	mode := os.FileMode(0o640)
	recs := []Record{
		{Path: "b/second", Data: "d2", Size: 3, Create: true},
		{Path: "a/first", Data: "d1", Size: 5, Base: `W/"x"`, Meta: backends.Meta{MTime: &mt, Mode: &mode, SHA256: "ab"}},
	}
	for i := range recs {
		if err := j.Commit(&recs[i], mk(recs[i].Data, "data")); err != nil {
			t.Fatal(err)
		}
	}
	mk("orphan", "never closed")
	j2, err := openJournal(j.dir, j.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	got, quarantined, orphans, err := j2.Load()
	if err != nil || len(quarantined) != 0 {
		t.Fatalf("load: %v, quarantined %v", err, quarantined)
	}
	if len(got) != 2 || got[0].Path != "b/second" || got[1].Path != "a/first" {
		t.Fatalf("records not in commit order: %+v", got)
	}
	r := got[1]
	if r.Base != `W/"x"` || r.Size != 5 || r.Meta.MTime == nil || !r.Meta.MTime.Equal(mt) || *r.Meta.Mode != 0o640 || r.Meta.SHA256 != "ab" {
		t.Fatalf("record changed on the way: %+v %+v", r, r.Meta)
	}
	if len(orphans) != 1 || filepath.Base(orphans[0]) != "orphan" {
		t.Fatalf("orphans %v, want the unnamed staging file", orphans)
	}
	var next Record = Record{Path: "c", Data: "d3"}
	if err := j2.Commit(&next, mk("d3", "")); err != nil || next.Seq <= got[1].Seq {
		t.Fatalf("sequence after reload: %d (last %d), %v", next.Seq, got[1].Seq, err)
	}
}

func TestJournalQuarantinesDamagedRecords(t *testing.T) {
	j, mk := newTestJournal(t)
	good := Record{Path: "good", Data: "d1"}
	bad := Record{Path: "bad", Data: "d2"}
	j.Commit(&good, mk("d1", "x"))
	j.Commit(&bad, mk("d2", "precious"))
	name := j.recordName(bad.Seq)
	body, _ := os.ReadFile(name)
	os.WriteFile(name, []byte(strings.Replace(string(body), "bad", "bat", 1)), 0o600)
	os.WriteFile(j.recordName(99), []byte("{\"seq\":99,"), 0o600)
	// A record spare whose content never reached the disk: empty.
	os.WriteFile(j.recordName(100), nil, 0o600)

	recs, quarantined, orphans, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Path != "good" {
		t.Fatalf("records %+v, want only the good one", recs)
	}
	if len(j.Quarantined()) != 3 || len(quarantined) != 4 {
		t.Fatalf("quarantined %v, want 3 records and the staging file no readable record names", quarantined)
	}
	// The damaged record's data is not an orphan to delete: it is kept
	// with the record.
	if len(orphans) != 0 {
		t.Fatalf("orphans %v while a record could not be read; none may be deleted", orphans)
	}
	if data, err := os.ReadFile(filepath.Join(j.dir, quarantineDir, "d2")); err != nil || string(data) != "precious" {
		t.Fatalf("data of a damaged record: %q %v; it must be kept", data, err)
	}
}

func TestJournalKeepsNewerRecordOfAPath(t *testing.T) {
	j, mk := newTestJournal(t)
	f := mk("d", "v1")
	old := Record{Path: "p", Data: "d"}
	j.Commit(&old, f)
	newer := Record{Path: "p", Data: "d", Size: 9}
	j.Commit(&newer, f) // a crash before the old record's removal
	recs, _, _, err := j.Load()
	if err != nil || len(recs) != 1 || recs[0].Seq != newer.Seq {
		t.Fatalf("records %+v %v, want only the newer", recs, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	body, _ := encodeRecord(Record{Seq: 7, Path: "a/b", Data: "stage-1", Size: 3})
	f.Add(body)
	f.Add([]byte("{}\n0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decodeRecord(data)
		if err != nil {
			return
		}
		if !validPath(rec.Path) || rec.Seq == 0 || rec.Data != filepath.Base(rec.Data) {
			t.Fatalf("accepted an invalid record %+v", rec)
		}
		again, err := encodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRecord(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

func TestJournalSparesMakeCommitsCheapAndVanishAfterACrash(t *testing.T) {
	j, _ := newTestJournal(t)
	const n = 3*spareBatch + 5
	syncs := dirSyncs.Load()
	var last Record
	for i := range n {
		f, err := j.CreateData()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "content %d", i)
		last = Record{Path: fmt.Sprintf("f%d", i), Data: filepath.Base(f.Name()), Size: 9, Create: true}
		if err := j.Commit(&last, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// One sync of each directory per batch of spares, not one per commit.
	if got, limit := dirSyncs.Load()-syncs, int64(2*(n/spareBatch+1)); got > limit {
		t.Fatalf("%d commits synced a directory %d times, want at most %d", n, got, limit)
	}

	// A crash: no DropSpares. The next mount finds the records and the
	// data, and nothing else.
	j2, err := openJournal(j.dir, j.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	recs, quarantined, orphans, err := j2.Load()
	if err != nil || len(quarantined) != 0 || len(orphans) != 0 {
		t.Fatalf("load: %v, quarantined %v, orphans %v", err, quarantined, orphans)
	}
	if len(recs) != n || recs[n-1].Path != last.Path || recs[n-1].Seq != last.Seq {
		t.Fatalf("%d records, last %+v; want %d, last %+v", len(recs), recs[len(recs)-1], n, last)
	}
	for _, r := range recs {
		data, err := os.ReadFile(filepath.Join(j.dataDir, r.Data))
		if want := "content " + strings.TrimPrefix(r.Path, "f"); err != nil || string(data) != want {
			t.Fatalf("data of %s: %q %v, want %q", r.Path, data, err, want)
		}
	}
	count := func(dir string) int {
		des, _ := os.ReadDir(dir)
		return len(des)
	}
	if got := count(j.dir); got != n {
		t.Fatalf("journal directory has %d files after load, want the %d records", got, n)
	}
	if got := count(j.dataDir); got != n {
		t.Fatalf("staging directory has %d files after load, want the %d records' data", got, n)
	}

	// Commits go on after the reload; a clean unmount leaves no spares.
	f, err := j2.CreateData()
	if err != nil {
		t.Fatal(err)
	}
	next := Record{Path: "after", Data: filepath.Base(f.Name())}
	if err := j2.Commit(&next, f); err != nil || next.Seq <= last.Seq {
		t.Fatalf("commit after reload: seq %d (last %d), %v", next.Seq, last.Seq, err)
	}
	f.Close()
	j2.DropSpares()
	if got := count(j.dir); got != n+1 {
		t.Fatalf("journal directory has %d files after DropSpares, want %d records", got, n+1)
	}
	if got := count(j.dataDir); got != n+1 {
		t.Fatalf("staging directory has %d files after DropSpares, want %d", got, n+1)
	}
}
