package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Record is one upload that is not on the server yet: the truth about
// local data the server lacks. Its data lives in a staging file.
type Record struct {
	// Seq orders records: a higher one was committed later. A new commit of
	// the same file gets a new Seq.
	Seq uint64 `json:"seq"`
	// Path is where the content goes, relative to the mount root.
	Path string `json:"path"`
	// Data is the name of the staging file that holds the content.
	Data string `json:"data"`
	// Size is the content's length.
	Size int64 `json:"size"`
	// Sum is the SHA-256 (hex) of the content as committed: a staging file
	// with other bytes after a crash is never uploaded.
	Sum string `json:"sum,omitempty"`
	// Base is the server version the content was edited from; the upload
	// must not replace any other version. "" with Create: a new file.
	Base string `json:"base,omitempty"`
	// Create: the file is new; the upload must not replace a file that
	// appeared on the server meanwhile.
	Create bool `json:"create,omitempty"`
	// Meta is the file's metadata (mtime, mode, owner, type, hash).
	Meta backends.Meta `json:"-"`
	// Committed is when close or fsync handed the content to the journal.
	Committed time.Time `json:"committed"`

	// Change is "" for an upload. Otherwise the record is a change of the
	// server's tree made while the server could not be reached (or while
	// earlier changes still waited), carried out in sequence order when it
	// answers: ChangeMkdir, ChangeRemove or ChangeRename. It has no data;
	// Size and Meta describe the entry it concerns, so that the mount can
	// show the change until it is done.
	Change string `json:"change,omitempty"`
	// To is where ChangeRename moves Path.
	To string `json:"to,omitempty"`
	// ToBase is the server version of the entry at To that ChangeRename
	// replaces ("" when there was none): another one there is not replaced.
	ToBase string `json:"to_base,omitempty"`
	// Dir: the entry removed, renamed or made is a directory.
	Dir bool `json:"dir,omitempty"`
}

// Kinds of Record.Change.
const (
	ChangeMkdir  = "mkdir"
	ChangeRemove = "remove"
	ChangeRename = "rename"
)

// IsChange reports whether r is a change of the tree rather than an upload.
func (r Record) IsChange() bool { return r.Change != "" }

// String names r for messages: its path, or the change and its paths.
func (r Record) String() string {
	switch r.Change {
	case "":
		return r.Path
	case ChangeRename:
		return fmt.Sprintf("rename %s to %s", r.Path, r.To)
	default:
		return r.Change + " " + r.Path
	}
}

// journalRecord is Record's on-disk form.
type journalRecord struct {
	Record
	Meta record `json:"meta"`
}

// Journal is the durable log of the uploads that are not on the server yet.
//
// Every change (a commit, a rename or metadata change of a queued file, the
// end of an upload) is a record appended to a segment file: a write handed
// to the kernel, no sync. Durability comes by group commit: a batch syncs the
// staging files written since the last batch, their directory, then the
// segment (Flush; every commit interval, or at once for fsync). A frame
// carries a CRC and a commit carries the SHA-256 of its data, so what a power
// cut tears is recognised: a torn frame at the tail of the last segment is
// dropped, a damaged one elsewhere is quarantined with the data no readable
// record names, and a staging file whose bytes differ from its record goes
// to quarantine, never to the server. Segments are compacted into one that
// holds only the live records once most of their records are obsolete.
type Journal struct {
	fs      vfs
	dir     string // segments
	dataDir string // staging files the records point to
	log     *slog.Logger

	mu       sync.Mutex // protects the fields below
	next     uint64
	live     map[uint64]Record
	liveSize int64 // encoded size of the live records
	seg      vfile // the segment appends go to; nil until Load
	segNo    uint64
	segSize  int64
	gen      uint64          // appends so far
	durable  uint64          // gen that the last batch made durable
	unsynced map[string]bool // staging files committed since the last batch
	newData  bool            // a staging file was created since the last batch
	newSeg   bool            // the segment's directory entry is not durable yet

	batchMu sync.Mutex // one batch at a time; taken before mu
	stop    chan struct{}
	done    chan struct{}
	spares  spares
}

// Journal file names: segments, the legacy one-file-per-record format (read
// once, then compacted away), and the quarantine directory.
const (
	segmentSuffix = ".seg"
	legacySuffix  = ".rec"
	quarantineDir = "quarantine"
	// compactMin is the segment size below which compaction never runs.
	compactMin = 4 << 20
	// maxFrame bounds a frame's length: a larger one is damage.
	maxFrame = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// openJournal opens the journal in dir, whose records point into dataDir.
// Load must run before the first change.
func openJournal(dir, dataDir string) (*Journal, error) {
	return openJournalFS(osFS{}, dir, dataDir)
}

func openJournalFS(fsys vfs, dir, dataDir string) (*Journal, error) {
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{fs: fsys, dir: dir, dataDir: dataDir, log: slog.Default(), next: 1,
		live: map[uint64]Record{}, unsynced: map[string]bool{}}, nil
}

// LoadResult is what Load found.
type LoadResult struct {
	// Records are the pending uploads, oldest first.
	Records []Record
	// Quarantined are the files moved to the quarantine directory now: the
	// data of records whose bytes differ from the record, the data no
	// readable record names where records were damaged, damaged segments.
	Quarantined []string
	// Orphans are staging files that no record names in an intact journal:
	// data of writers that never closed. The caller removes them.
	Orphans []string
	// Dropped says what a crash left that is not an upload: a torn tail, a
	// record whose staging file is gone.
	Dropped []string
}

// Load reads the journal (oldest segment first), checks each pending
// upload's staging file against its record unless the last mount ended
// cleanly, compacts the result into a new durable segment and makes it the
// one appended to. A record that cannot be read is never a reason to delete
// data: see LoadResult.
func (j *Journal) Load() (LoadResult, error) {
	var res LoadResult
	j.spares.drain()
	names, err := j.fs.ReadDir(j.dir)
	if err != nil {
		return res, fmt.Errorf("journal: %w", err)
	}
	j.batchMu.Lock()
	defer j.batchMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.seg != nil {
		j.seg.Close()
		j.seg = nil
	}
	j.live = map[uint64]Record{}
	var segs, legacy []string
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, segmentSuffix):
			segs = append(segs, name)
			if n, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 16, 64); err == nil && n > j.segNo {
				j.segNo = n
			}
		case strings.HasSuffix(name, legacySuffix):
			legacy = append(legacy, name)
		case strings.HasSuffix(name, ".tmp"):
			j.fs.Remove(filepath.Join(j.dir, name))
		}
	}
	damaged, torn, clean := false, false, false
	for _, name := range legacy {
		data, rerr := j.readFile(filepath.Join(j.dir, name))
		if rerr == nil && string(data) == "spare\n" {
			continue
		}
		var rec Record
		if rerr == nil {
			rec, rerr = decodeRecord(data)
		}
		if rerr != nil {
			q, qerr := j.quarantine(filepath.Join(j.dir, name), name, rerr.Error())
			if qerr != nil {
				return res, qerr
			}
			res.Quarantined = append(res.Quarantined, q)
			damaged = true
			continue
		}
		j.putLocked(rec)
	}
	for i, name := range segs {
		last := i == len(segs)-1
		data, err := j.readFile(filepath.Join(j.dir, name))
		if err != nil {
			return res, fmt.Errorf("journal: read %s: %w", name, err)
		}
		entries, bad := parseSegment(data, last)
		for _, e := range entries {
			j.apply(e)
		}
		clean = last && len(entries) > 0 && entries[len(entries)-1].Op == opClean
		switch {
		case bad.damaged:
			damaged = true
			q, qerr := j.quarantineCopy(name, data, bad.what)
			if qerr != nil {
				return res, qerr
			}
			res.Quarantined = append(res.Quarantined, q)
		case bad.tornAt >= 0:
			torn = true
			res.Dropped = append(res.Dropped, fmt.Sprintf("%d bytes torn at the end of the journal (records of the last moments before a crash)", len(data)-bad.tornAt))
		}
	}
	for _, r := range j.live {
		if r.Seq >= j.next {
			j.next = r.Seq + 1
		}
	}
	// Two records of one path (a crash before the older one's removal), or
	// of one staging file (committed again, perhaps renamed, and the older
	// record's end did not survive a crash): the newer wins.
	j.keepNewest(func(r Record) string { return r.Path })
	j.keepNewest(func(r Record) string { return r.Data })
	// Each record's data must be there and be what was committed.
	for seq, r := range j.live {
		if clean {
			break
		}
		if r.IsChange() {
			continue
		}
		why, missing := j.checkData(r)
		switch {
		case why == "":
		case missing:
			j.forgetLocked(seq)
			res.Dropped = append(res.Dropped, fmt.Sprintf("%s: %s (uploaded or removed just before a crash, or closed less than a commit interval before it)", r.Path, why))
		default:
			j.forgetLocked(seq)
			q, qerr := j.quarantine(filepath.Join(j.dataDir, r.Data), r.Data, fmt.Sprintf("staging file of %s: %s; it was not uploaded", r.Path, why))
			if qerr != nil {
				return res, qerr
			}
			res.Quarantined = append(res.Quarantined, q)
		}
	}
	named := map[string]bool{}
	for _, r := range j.live {
		res.Records = append(res.Records, r)
		if !r.IsChange() {
			named[r.Data] = true
			j.unsynced[r.Data] = true // kill -9 may have left it in the page cache only
		}
	}
	sort.Slice(res.Records, func(a, b int) bool { return res.Records[a].Seq < res.Records[b].Seq })
	staged, err := j.fs.ReadDir(j.dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("journal: %w", err)
	}
	for _, name := range staged {
		p := filepath.Join(j.dataDir, name)
		switch {
		case named[name]:
		case j.emptyFile(p):
			j.fs.Remove(p)
		case damaged || torn:
			// Perhaps the data of a record that is gone: keep it.
			q, qerr := j.quarantine(p, name, "staging file that no readable journal record names, found after a crash or damage; it was not uploaded")
			if qerr != nil {
				return res, qerr
			}
			res.Quarantined = append(res.Quarantined, q)
		default:
			res.Orphans = append(res.Orphans, p)
		}
	}
	if len(res.Quarantined) > 0 {
		j.fs.SyncDir(j.dataDir)
		j.fs.SyncDir(filepath.Join(j.dir, quarantineDir))
	}
	if err := j.compactLocked(); err != nil {
		return res, err
	}
	for _, name := range legacy {
		j.fs.Remove(filepath.Join(j.dir, name))
	}
	if len(legacy) > 0 {
		j.fs.SyncDir(j.dir)
	}
	return res, nil
}

// keepNewest drops every live upload but the newest of those that share
// a key (changes of the tree each stand alone). j.mu is held.
func (j *Journal) keepNewest(key func(Record) string) {
	newest := map[string]Record{}
	for seq, r := range j.live {
		if r.IsChange() {
			continue
		}
		if old, ok := newest[key(r)]; ok {
			if old.Seq > seq {
				j.forgetLocked(seq)
				continue
			}
			j.forgetLocked(old.Seq)
		}
		newest[key(r)] = r
	}
}

// apply changes the live records by one journal entry. j.mu is held.
func (j *Journal) apply(e journalEntry) {
	switch e.Op {
	case opPut:
		r := e.Rec.Record
		r.Meta = e.Rec.Meta.meta()
		j.putLocked(r)
	case opDel:
		j.forgetLocked(e.Seq)
	}
}

// putLocked makes r the live record r.Seq. j.mu is held.
func (j *Journal) putLocked(r Record) {
	j.forgetLocked(r.Seq)
	j.live[r.Seq] = r
	j.liveSize += frameSize(r)
	if r.Seq >= j.next {
		j.next = r.Seq + 1
	}
}

// forgetLocked drops the live record seq. j.mu is held.
func (j *Journal) forgetLocked(seq uint64) {
	if r, ok := j.live[seq]; ok {
		j.liveSize -= frameSize(r)
		delete(j.live, seq)
	}
}

// checkData reports why r's staging file cannot be uploaded for r, "" if
// it can; missing if it is not there at all.
func (j *Journal) checkData(r Record) (why string, missing bool) {
	f, err := j.fs.OpenFile(filepath.Join(j.dataDir, r.Data), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "its staging file is gone", true
	}
	if err != nil {
		return err.Error(), false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err.Error(), false
	}
	if size != r.Size {
		return fmt.Sprintf("the staging file has %d bytes, its journal record says %d", size, r.Size), false
	}
	if r.Sum == "" {
		return "", false // a record of the legacy format: written durably before
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return err.Error(), false
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != r.Sum {
		return fmt.Sprintf("the staging file's content (sha256 %s) is not what was committed (sha256 %s)", got, r.Sum), false
	}
	return "", false
}

// Quarantined lists the files moved to the quarantine directory so far
// (this mount or earlier), except the notes that say why.
func (j *Journal) Quarantined() []string {
	names, _ := j.fs.ReadDir(filepath.Join(j.dir, quarantineDir))
	var out []string
	for _, n := range names {
		if !strings.HasSuffix(n, ".why") {
			out = append(out, filepath.Join(j.dir, quarantineDir, n))
		}
	}
	return out
}

// QuarantineDir is where data that cannot be uploaded is kept.
func (j *Journal) QuarantineDir() string { return filepath.Join(j.dir, quarantineDir) }

// quarantine moves the file src to the quarantine directory as name, with a
// note saying why, and returns where it went.
func (j *Journal) quarantine(src, name, why string) (string, error) {
	qdir := filepath.Join(j.dir, quarantineDir)
	if err := j.fs.MkdirAll(qdir); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	dst := filepath.Join(qdir, name)
	if err := j.fs.Rename(src, dst); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	j.writeNote(dst+".why", why)
	return dst, nil
}

// quarantineCopy keeps a copy of a damaged segment (the segment itself is
// compacted away).
func (j *Journal) quarantineCopy(name string, data []byte, why string) (string, error) {
	qdir := filepath.Join(j.dir, quarantineDir)
	if err := j.fs.MkdirAll(qdir); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	dst := filepath.Join(qdir, name)
	f, err := j.fs.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteAt(data, 0)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	j.writeNote(dst+".why", "damaged journal segment: "+why)
	return dst, nil
}

func (j *Journal) writeNote(name, why string) {
	if f, err := j.fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
		f.WriteAt([]byte(why+"\n"), 0)
		f.Close()
	}
}

// readFile reads a whole file through the journal's file system.
func (j *Journal) readFile(name string) ([]byte, error) {
	f, err := j.fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if err == io.EOF {
		err = nil
	}
	return data[:n], err
}

func (j *Journal) emptyFile(name string) bool {
	f, err := j.fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	return err == nil && size == 0
}

// CreateData returns a new, empty staging file: a spare made ahead of time
// when there is one (see spares). Its directory entry is made durable by
// the next batch that also makes a record naming it durable.
func (j *Journal) CreateData() (*os.File, error) {
	f := j.spares.take()
	if f == nil {
		var err error
		if f, err = os.CreateTemp(j.dataDir, "stage-"); err != nil {
			return nil, fmt.Errorf("journal: create staging file: %w", err)
		}
	}
	j.mu.Lock()
	j.newData = true
	j.mu.Unlock()
	return f, nil
}

// Commit appends rec (its content in the staging file rec.Data, written
// and not to be changed until the next commit) with a new sequence number.
// The caller removes the record it replaces with Delete. rec.Sum defaults
// to rec.Meta.SHA256, else the staging file is hashed. A change of the tree
// (rec.Change) has no staging file.
func (j *Journal) Commit(rec *Record) error {
	if rec.IsChange() {
		rec.Data, rec.Sum = "", ""
	} else if rec.Sum == "" {
		rec.Sum = rec.Meta.SHA256
	}
	if rec.Sum == "" && !rec.IsChange() {
		sum, err := j.hashData(rec.Data)
		if err != nil {
			return fmt.Errorf("journal: hash staging file of %s: %w", rec.Path, err)
		}
		rec.Sum = sum
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	seq := j.next
	rec.Seq = seq
	if err := j.appendLocked(journalEntry{Op: opPut, Rec: &journalRecord{Record: *rec}}, *rec); err != nil {
		return fmt.Errorf("journal: record %s: %w", rec.Path, err)
	}
	j.next++
	if !rec.IsChange() {
		j.unsynced[rec.Data] = true
	}
	return nil
}

func (j *Journal) hashData(data string) (string, error) {
	f, err := j.fs.OpenFile(filepath.Join(j.dataDir, data), os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lastSeq is the highest sequence number given out so far.
func (j *Journal) lastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Update appends a new state of the record rec.Seq: a rename or a metadata
// change of a committed file.
func (j *Journal) Update(rec Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.live[rec.Seq]; !ok {
		return nil // uploaded or replaced meanwhile
	}
	if err := j.appendLocked(journalEntry{Op: opPut, Rec: &journalRecord{Record: rec}}, rec); err != nil {
		return fmt.Errorf("journal: record %s: %w", rec.Path, err)
	}
	return nil
}

// Delete appends the end of the record seq: uploaded, replaced or removed.
func (j *Journal) Delete(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.live[seq]; !ok {
		return nil
	}
	if err := j.appendLocked(journalEntry{Op: opDel, Seq: seq}, Record{}); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Forget tells the journal that a staging file is gone.
func (j *Journal) Forget(data string) {
	j.mu.Lock()
	delete(j.unsynced, data)
	j.mu.Unlock()
}

// appendLocked writes one entry at the end of the segment and applies it.
// A failed write (a full disk) is cut off again, so that the segment
// never holds a torn frame in its middle. j.mu is held.
func (j *Journal) appendLocked(e journalEntry, r Record) error {
	if j.seg == nil {
		return errors.New("the journal is not loaded")
	}
	frame, err := encodeFrame(e, r)
	if err != nil {
		return err
	}
	if _, err := j.seg.WriteAt(frame, j.segSize); err != nil {
		j.seg.Truncate(j.segSize)
		return err
	}
	j.segSize += int64(len(frame))
	j.gen++
	switch e.Op {
	case opPut:
		j.forgetLocked(r.Seq)
		j.live[r.Seq] = r
		j.liveSize += int64(len(frame))
	case opDel:
		j.forgetLocked(e.Seq)
	}
	return nil
}

// compactLocked writes the live records into a new segment, makes it
// durable and removes the older segments. j.mu is held.
func (j *Journal) compactLocked() error {
	recs := make([]Record, 0, len(j.live))
	for _, r := range j.live {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Seq < recs[b].Seq })
	var buf bytes.Buffer
	for _, r := range recs {
		frame, err := encodeFrame(journalEntry{Op: opPut, Rec: &journalRecord{Record: r}}, r)
		if err != nil {
			return err
		}
		buf.Write(frame)
	}
	no := j.segNo + 1
	name := filepath.Join(j.dir, segName(no))
	f, err := j.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		if _, err = f.WriteAt(buf.Bytes(), 0); err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = j.fs.SyncDir(j.dir)
		}
		if err != nil {
			f.Close()
			j.fs.Remove(name)
		}
	}
	if err != nil {
		return fmt.Errorf("journal: compact: %w", err)
	}
	if j.seg != nil {
		j.seg.Close()
	}
	names, _ := j.fs.ReadDir(j.dir)
	removed := false
	for _, n := range names {
		if strings.HasSuffix(n, segmentSuffix) && n != segName(no) {
			j.fs.Remove(filepath.Join(j.dir, n))
			removed = true
		}
	}
	if removed {
		j.fs.SyncDir(j.dir)
	}
	j.seg, j.segNo, j.segSize = f, no, int64(buf.Len())
	j.liveSize = int64(buf.Len())
	j.gen++
	return nil
}

// segName is a segment's file name: fixed-width hex, so that names sort
// like their numbers.
func segName(no uint64) string {
	return fmt.Sprintf("%016x%s", no, segmentSuffix)
}

// Journal entries.
const (
	opPut   = "put"   // a record's new state
	opDel   = "del"   // a record's end
	opClean = "clean" // the last entry of a clean close: all data synced
)

// journalEntry is one frame's payload.
type journalEntry struct {
	Op  string         `json:"op"`
	Seq uint64         `json:"seq,omitempty"`
	Rec *journalRecord `json:"rec,omitempty"`
}

// A frame: magic, the payload's length and its CRC-32C (both little
// endian), then the payload (JSON).
var frameMagic = [2]byte{0xC1, 0x0D}

const frameHeader = 10

// encodeFrame returns the frame of e; r is the record of a put.
func encodeFrame(e journalEntry, r Record) ([]byte, error) {
	if e.Op == opPut {
		jr := journalRecord{Record: r}
		jr.Meta.merge(r.Meta)
		e.Rec = &jr
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("journal: encode: %w", err)
	}
	frame := make([]byte, frameHeader+len(payload))
	copy(frame, frameMagic[:])
	binary.LittleEndian.PutUint32(frame[2:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[6:], crc32.Checksum(payload, crcTable))
	copy(frame[frameHeader:], payload)
	return frame, nil
}

// frameSize is the encoded size of r's put (for the compaction estimate).
func frameSize(r Record) int64 {
	f, err := encodeFrame(journalEntry{Op: opPut}, r)
	if err != nil {
		return 0
	}
	return int64(len(f))
}

// decodeFrame parses the frame at the start of b and returns its entry and
// length, or ok false if there is no valid frame there.
func decodeFrame(b []byte) (e journalEntry, n int, ok bool) {
	if len(b) < frameHeader || b[0] != frameMagic[0] || b[1] != frameMagic[1] {
		return e, 0, false
	}
	size := binary.LittleEndian.Uint32(b[2:])
	if size > maxFrame || int(size) > len(b)-frameHeader {
		return e, 0, false
	}
	payload := b[frameHeader : frameHeader+int(size)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[6:]) {
		return e, 0, false
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, 0, false
	}
	switch e.Op {
	case opPut:
		if e.Rec == nil || checkRecord(e.Rec.Record) != nil {
			return e, 0, false
		}
	case opDel:
		if e.Seq == 0 {
			return e, 0, false
		}
	case opClean:
	default:
		return e, 0, false
	}
	return e, frameHeader + int(size), true
}

// segmentDamage says what was wrong with a segment.
type segmentDamage struct {
	damaged bool   // a bad frame with valid ones after it, or in an older segment
	tornAt  int    // offset of a torn tail, or -1
	what    string // for the quarantine note
}

// parseSegment returns the valid entries of a segment. A bad frame at the
// tail of the last segment, with nothing valid after it, is a torn write of
// a crash; any other bad frame is damage, and parsing goes on at the next
// valid frame.
func parseSegment(data []byte, last bool) ([]journalEntry, segmentDamage) {
	d := segmentDamage{tornAt: -1}
	var out []journalEntry
	for off := 0; off < len(data); {
		e, n, ok := decodeFrame(data[off:])
		if ok {
			out = append(out, e)
			off += n
			continue
		}
		next := -1
		for k := off + 1; k+frameHeader <= len(data); k++ {
			if data[k] != frameMagic[0] || data[k+1] != frameMagic[1] {
				continue
			}
			if _, _, ok := decodeFrame(data[k:]); ok {
				next = k
				break
			}
		}
		if next < 0 && last {
			d.tornAt = off
			return out, d
		}
		d.damaged = true
		if d.what == "" {
			d.what = fmt.Sprintf("unreadable record at offset %d", off)
		}
		if next < 0 {
			return out, d
		}
		off = next
	}
	return out, d
}

// checkRecord checks a record's fields.
func checkRecord(rec Record) error {
	switch {
	case rec.Seq == 0:
		return errors.New("record has no sequence number")
	case rec.IsChange():
		return checkChange(rec)
	case rec.Data == "" || rec.Data != filepath.Base(rec.Data) || rec.Data == "." || rec.Data == "..":
		return fmt.Errorf("record names no valid data file (%q)", rec.Data)
	case rec.Size < 0:
		return errors.New("record has a negative size")
	case !validPath(rec.Path):
		return fmt.Errorf("record has an invalid path %q", rec.Path)
	}
	return nil
}

// checkChange checks the fields of a change of the tree.
func checkChange(rec Record) error {
	switch {
	case rec.Change != ChangeMkdir && rec.Change != ChangeRemove && rec.Change != ChangeRename:
		return fmt.Errorf("record has an unknown change %q", rec.Change)
	case rec.Data != "":
		return errors.New("change record names a data file")
	case rec.Path == "" || !validPath(rec.Path):
		return fmt.Errorf("record has an invalid path %q", rec.Path)
	case rec.Change == ChangeRename && (rec.To == "" || !validPath(rec.To)):
		return fmt.Errorf("record has an invalid destination %q", rec.To)
	}
	return nil
}

// decodeRecord parses a record file of the legacy format (one JSON line,
// then the CRC-32C of that line in hex), checking its CRC and its fields.
func decodeRecord(data []byte) (Record, error) {
	line, tail, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return Record{}, errors.New("record is truncated")
	}
	want, err := strconv.ParseUint(strings.TrimSpace(string(tail)), 16, 32)
	if err != nil {
		return Record{}, errors.New("record has no checksum")
	}
	if crc32.Checksum(line, crcTable) != uint32(want) {
		return Record{}, errors.New("record checksum mismatch")
	}
	var jr journalRecord
	if err := json.Unmarshal(line, &jr); err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	rec := jr.Record
	rec.Meta = jr.Meta.meta()
	if err := checkRecord(rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// validPath accepts clean relative paths below the mount root.
func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return !strings.ContainsRune(p, 0)
}
