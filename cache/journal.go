package cache

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"golang.org/x/sys/unix"
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
	// Base is the server version the content was edited from; the upload
	// must not replace any other version. "" with Create: a new file.
	Base string `json:"base,omitempty"`
	// Create: the file is new; the upload must not replace a file that
	// appeared on the server meanwhile.
	Create bool `json:"create,omitempty"`
	// Meta is the file's metadata (mtime, mode, owner, type, hash).
	Meta backends.Meta `json:"-"`
	// Committed is when close or fsync made the content durable.
	Committed time.Time `json:"committed"`
}

// journalRecord is Record's on-disk form.
type journalRecord struct {
	Record
	Meta record `json:"meta"`
}

// Journal keeps one durable record file per pending upload in its
// directory. A new record is written into an empty spare file and synced
// (journal_spares.go); a changed one is written to a temporary name, synced
// and renamed, so a crash leaves either the old or the new record. Each
// file ends in a CRC so that damage is detected rather than trusted.
type Journal struct {
	dir     string // record files
	dataDir string // staging files the records point to

	mu     sync.Mutex // protects the fields below
	next   uint64
	synced map[string]bool // staging files whose directory entry is durable

	spareMu      sync.Mutex // protects the fields below; taken before mu
	spareData    []string   // empty staging files, directory entries durable
	spareRecUpTo uint64     // empty record files exist up to this sequence number
}

// journalSuffix names record files; quarantineDir holds the ones that could
// not be read.
const (
	journalSuffix = ".rec"
	quarantineDir = "quarantine"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// openJournal opens the journal in dir, whose records point into dataDir.
func openJournal(dir, dataDir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{dir: dir, dataDir: dataDir, next: 1, synced: map[string]bool{}}, nil
}

// Load reads every record, oldest first. A record that cannot be read is
// moved to the quarantine directory and named in quarantined; it is never a
// reason to delete data, so the staging files that no readable record names
// go to the quarantine directory with it (one of them is its data). Where
// two records name the same path (a crash between writing a newer commit
// and removing the older one), the newer wins. Otherwise staging files that
// no record names are returned as orphans: data of writers that never
// closed. Unused spares are removed, and so are empty staging files.
func (j *Journal) Load() (recs []Record, quarantined, orphans []string, err error) {
	j.spareMu.Lock()
	j.spareData, j.spareRecUpTo = nil, 0
	j.spareMu.Unlock()
	names, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("journal: %w", err)
	}
	byPath := map[string]Record{}
	for _, de := range names {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(j.dir, name))
			continue
		}
		if de.IsDir() || !strings.HasSuffix(name, journalSuffix) {
			continue
		}
		data, rerr := os.ReadFile(filepath.Join(j.dir, name))
		if rerr == nil && string(data) == spareMark {
			os.Remove(filepath.Join(j.dir, name))
			continue
		}
		var rec Record
		if rerr == nil {
			rec, rerr = decodeRecord(data)
		}
		if rerr == nil && strings.TrimSuffix(name, journalSuffix) != seqName(rec.Seq) {
			rerr = errors.New("record file name does not match its sequence number")
		}
		if rerr != nil {
			q, qerr := j.quarantine(name, rerr)
			if qerr != nil {
				return nil, nil, nil, qerr
			}
			quarantined = append(quarantined, q)
			continue
		}
		if rec.Seq >= j.next {
			j.next = rec.Seq + 1
		}
		if old, ok := byPath[rec.Path]; ok {
			older := old
			if old.Seq > rec.Seq {
				older, rec = rec, old
			}
			os.Remove(j.recordName(older.Seq))
		}
		byPath[rec.Path] = rec
	}
	named := map[string]bool{}
	for _, r := range byPath {
		recs = append(recs, r)
		named[r.Data] = true
	}
	sort.Slice(recs, func(a, b int) bool { return recs[a].Seq < recs[b].Seq })
	staged, err := os.ReadDir(j.dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("journal: %w", err)
	}
	for _, de := range staged {
		name := filepath.Join(j.dataDir, de.Name())
		switch {
		case named[de.Name()]:
		case emptyFile(name):
			os.Remove(name)
		case len(quarantined) > 0:
			dst := filepath.Join(j.dir, quarantineDir, de.Name())
			if err := os.Rename(name, dst); err != nil {
				return nil, nil, nil, fmt.Errorf("journal quarantine: %w", err)
			}
			quarantined = append(quarantined, dst)
		default:
			orphans = append(orphans, name)
		}
	}
	if len(quarantined) > 0 {
		syncDir(j.dataDir)
		syncDir(filepath.Join(j.dir, quarantineDir))
	}
	return recs, quarantined, orphans, nil
}

// quarantine moves an unreadable record aside and returns where it went.
func (j *Journal) quarantine(name string, cause error) (string, error) {
	qdir := filepath.Join(j.dir, quarantineDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	dst := filepath.Join(qdir, name)
	if err := os.Rename(filepath.Join(j.dir, name), dst); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	os.WriteFile(dst+".why", []byte(cause.Error()+"\n"), 0o600)
	syncDir(j.dir)
	return dst, nil
}

// Quarantined lists the records moved aside so far (this mount or earlier).
func (j *Journal) Quarantined() []string {
	names, _ := filepath.Glob(filepath.Join(j.dir, quarantineDir, "*"+journalSuffix))
	return names
}

// Commit makes rec and its data durable: the staging file's data, its
// directory entry (made ahead for files from CreateData), then the record
// (written into its spare and synced). It gives rec a new sequence number;
// the caller removes the record it replaces with Delete.
func (j *Journal) Commit(rec *Record, data *os.File) error {
	if err := unix.Fdatasync(int(data.Fd())); err != nil {
		return fmt.Errorf("journal: sync data of %s: %w", rec.Path, err)
	}
	j.mu.Lock()
	rec.Seq = j.next
	j.next++
	dirSynced := j.synced[rec.Data]
	j.mu.Unlock()
	if !dirSynced {
		if err := syncDir(j.dataDir); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.mu.Lock()
		j.synced[rec.Data] = true
		j.mu.Unlock()
	}
	return j.writeNew(*rec)
}

// lastSeq is the highest sequence number given out so far.
func (j *Journal) lastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Update rewrites rec in place (same sequence number): a rename or a
// metadata change of a committed file. durable syncs it, as Commit does.
func (j *Journal) Update(rec Record, durable bool) error {
	return j.write(rec, durable)
}

// Delete removes the record with sequence number seq and makes the removal
// durable, so that a record never outlives the data it points to.
func (j *Journal) Delete(seq uint64) error {
	err := os.Remove(j.recordName(seq))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(j.dir)
}

// Forget tells the journal that a staging file is gone.
func (j *Journal) Forget(data string) {
	j.mu.Lock()
	delete(j.synced, data)
	j.mu.Unlock()
}

// write stores rec under its sequence number.
func (j *Journal) write(rec Record, durable bool) error {
	body, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	name := j.recordName(rec.Seq)
	tmp := name + ".tmp"
	err = writeBody(tmp, os.O_CREATE|os.O_TRUNC, body, durable)
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil && durable {
		err = syncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: write record of %s: %w", rec.Path, err)
	}
	return nil
}

// writeBody writes body at the start of the file name, opened write-only
// with flag added, and syncs it if durable.
func writeBody(name string, flag int, body []byte, durable bool) error {
	f, err := os.OpenFile(name, os.O_WRONLY|flag, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(body, 0)
	if err == nil && durable {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// encodeRecord is the record file's content: one JSON line, then the
// CRC-32C of that line in hex.
func encodeRecord(rec Record) ([]byte, error) {
	jr := journalRecord{Record: rec}
	jr.Meta.merge(rec.Meta)
	line, err := json.Marshal(jr)
	if err != nil {
		return nil, fmt.Errorf("journal: encode record of %s: %w", rec.Path, err)
	}
	sum := crc32.Checksum(line, crcTable)
	out := append(line, '\n')
	return append(out, strconv.FormatUint(uint64(sum), 16)+"\n"...), nil
}

// decodeRecord parses a record file, checking its CRC and its fields.
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
	switch {
	case rec.Seq == 0:
		return Record{}, errors.New("record has no sequence number")
	case rec.Data == "" || rec.Data != filepath.Base(rec.Data) || rec.Data == "." || rec.Data == "..":
		return Record{}, fmt.Errorf("record names no valid data file (%q)", rec.Data)
	case rec.Size < 0:
		return Record{}, errors.New("record has a negative size")
	case !validPath(rec.Path):
		return Record{}, fmt.Errorf("record has an invalid path %q", rec.Path)
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

// recordName is the path of the record file of seq.
func (j *Journal) recordName(seq uint64) string {
	return filepath.Join(j.dir, seqName(seq)+journalSuffix)
}

// seqName is a record's file name without suffix: fixed-width hex, so that
// names sort like sequence numbers.
func seqName(seq uint64) string {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(seq)
		seq >>= 8
	}
	return hex.EncodeToString(b[:])
}

// dirSyncs counts syncDir calls (for tests: the price of a commit).
var dirSyncs atomic.Int64

// syncDir makes the directory entries of dir durable.
func syncDir(dir string) error {
	dirSyncs.Add(1)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
