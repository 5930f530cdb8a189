package cache

import (
	"fmt"
	"os"
	"path/filepath"
)

// Spare files. A commit must leave the staging file and its record durable,
// directory entries included. Syncing a directory per new file doubles the
// cost of closing a small file, so the journal creates empty staging files
// and empty record files ahead of time, a batch at a time, and syncs each
// directory once per batch. A commit then syncs only the two files' contents:
// the record is written in place into its spare, which is empty until then.
//
// An unused record spare holds spareMark, an unused staging spare nothing;
// Load removes both without a word. A record spare whose mark was not on
// disk yet at a crash is empty: Load quarantines it like any record it
// cannot read, which keeps all data.

// spareBatch is how many spares of each kind are made at once.
const spareBatch = 32

// spareMark is the content of an unused record spare. A record is longer,
// so writing one over it leaves nothing of the mark.
const spareMark = "spare\n"

// CreateData returns a new, empty staging file whose directory entry is
// already durable.
func (j *Journal) CreateData() (*os.File, error) {
	j.spareMu.Lock()
	defer j.spareMu.Unlock()
	if len(j.spareData) == 0 {
		if err := j.makeSpareData(); err != nil {
			return nil, err
		}
	}
	name := j.spareData[len(j.spareData)-1]
	j.spareData = j.spareData[:len(j.spareData)-1]
	f, err := os.OpenFile(filepath.Join(j.dataDir, name), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open staging file: %w", err)
	}
	j.mu.Lock()
	j.synced[name] = true
	j.mu.Unlock()
	return f, nil
}

// makeSpareData creates a batch of empty staging files. j.spareMu is held.
func (j *Journal) makeSpareData() error {
	for range spareBatch {
		f, err := os.CreateTemp(j.dataDir, "stage-")
		if err != nil {
			if len(j.spareData) > 0 {
				break // use what was made; the disk may be full
			}
			return fmt.Errorf("journal: create staging file: %w", err)
		}
		j.spareData = append(j.spareData, filepath.Base(f.Name()))
		f.Close()
	}
	if err := syncDir(j.dataDir); err != nil {
		j.dropSpareData()
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// writeNew stores the record of a new sequence number in its spare record
// file, making one if there is none. The spare is empty and its directory
// entry durable, so syncing its content makes the record durable; a crash
// before that leaves an empty or a torn file, of a commit that never
// returned.
func (j *Journal) writeNew(rec Record) error {
	if err := j.spareRecord(rec.Seq); err != nil {
		return err
	}
	body, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	name := j.recordName(rec.Seq)
	if err := writeBody(name, 0, body, true); err != nil {
		// Leave no torn record behind: this commit fails as a whole.
		os.Remove(name)
		return fmt.Errorf("journal: write record of %s: %w", rec.Path, err)
	}
	return nil
}

// spareRecord makes sure the empty record file of seq exists with a durable
// directory entry: it makes the next batch if seq is beyond the last one.
func (j *Journal) spareRecord(seq uint64) error {
	j.spareMu.Lock()
	defer j.spareMu.Unlock()
	if seq < j.spareRecUpTo {
		return nil
	}
	upTo := seq + spareBatch
	for s := max(seq, j.spareRecUpTo); s < upTo; s++ {
		name := j.recordName(s)
		if err := os.WriteFile(name, []byte(spareMark), 0o600); err != nil {
			os.Remove(name)
			if s > seq {
				upTo = s // use what was made; the disk may be full
				break
			}
			return fmt.Errorf("journal: create record file: %w", err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.spareRecUpTo = upTo
	return nil
}

// DropSpares removes the spares not used (at unmount). Commits must have
// ended.
func (j *Journal) DropSpares() {
	j.spareMu.Lock()
	defer j.spareMu.Unlock()
	j.dropSpareData()
	j.mu.Lock()
	next := j.next
	j.mu.Unlock()
	for s := next; s < j.spareRecUpTo; s++ {
		os.Remove(j.recordName(s))
	}
	j.spareRecUpTo = 0
}

// dropSpareData removes the spare staging files. j.spareMu is held.
func (j *Journal) dropSpareData() {
	for _, name := range j.spareData {
		os.Remove(filepath.Join(j.dataDir, name))
	}
	j.spareData = nil
}

// emptyFile reports whether name is an empty regular file.
func emptyFile(name string) bool {
	fi, err := os.Lstat(name)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}
