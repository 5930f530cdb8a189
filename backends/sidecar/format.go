package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// formatTag names the format of a metadata file; a file with another tag
// is not read (a later format gets a new tag).
const formatTag = "cloudmount-meta/1"

// MaxFileBytes bounds a metadata file: a larger one (a broken or hostile
// server) is ignored rather than read into memory. It holds about 150,000
// entries with every field set.
const MaxFileBytes = 32 << 20

// maxVersionBytes bounds the Version recorded for a child.
const maxVersionBytes = 512

// selfKey is the key under which a directory's metadata file keeps the
// directory's own metadata (used for the root, which has no parent).
const selfKey = "."

// fileJSON is the metadata file as stored: one JSON object, UTF-8.
//
//	{"format": "cloudmount-meta/1",
//	 "entries": {"report.txt": {"v": "\"5e1-6b0\"", "mtime": 1700000000123456789,
//	                            "mode": 420, "uid": 1000, "gid": 1000,
//	                            "sha256": "…", "type": ""},
//	             "photos": {"dir": true, "mtime": …, "mode": 493}}}
type fileJSON struct {
	Format  string                `json:"format"`
	Entries map[string]recordJSON `json:"entries"`
}

// recordJSON is one child's metadata as stored.
type recordJSON struct {
	Version string  `json:"v,omitempty"`
	Dir     bool    `json:"dir,omitempty"`
	MTime   *int64  `json:"mtime,omitempty"` // unix nanoseconds
	Mode    *uint32 `json:"mode,omitempty"`  // permission bits
	UID     *uint32 `json:"uid,omitempty"`
	GID     *uint32 `json:"gid,omitempty"`
	SHA256  string  `json:"sha256,omitempty"`
	Type    string  `json:"type,omitempty"`
}

// record is one child's metadata: valid for a file while its Version is
// the one recorded, for a directory while it is a directory.
type record struct {
	version string
	dir     bool
	meta    backends.Meta
}

// matches reports whether r describes the entry e as the server has it now.
func (r record) matches(e backends.Entry) bool {
	if r.dir || e.IsDir {
		return r.dir && e.IsDir
	}
	return r.version != "" && r.version == e.Version
}

// encode renders the records as a metadata file.
func encode(recs map[string]record) ([]byte, error) {
	f := fileJSON{Format: formatTag, Entries: make(map[string]recordJSON, len(recs))}
	for name, r := range recs {
		j := recordJSON{Version: r.version, Dir: r.dir, UID: r.meta.UID, GID: r.meta.GID, SHA256: r.meta.SHA256, Type: r.meta.Type}
		if r.meta.MTime != nil {
			ns := r.meta.MTime.UnixNano()
			j.MTime = &ns
		}
		if r.meta.Mode != nil {
			m := uint32(*r.meta.Mode & 0o7777)
			j.Mode = &m
		}
		f.Entries[name] = j
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	if buf.Len() > MaxFileBytes {
		return nil, fmt.Errorf("metadata file of %d entries would be %d bytes (the most is %d)", len(recs), buf.Len(), MaxFileBytes)
	}
	return buf.Bytes(), nil
}

// errMalformed marks a metadata file that cannot be read as a whole.
var errMalformed = errors.New("malformed metadata file")

// decode reads a metadata file from r, at most MaxFileBytes. A file that
// is too large, not JSON or of another format fails with errMalformed;
// entries that are not valid (a bad name, mode, hash, type, a time out of
// range) are left out and counted in skipped. Nothing in the file can make
// it fail otherwise or panic.
func decode(r io.Reader) (recs map[string]record, skipped int, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(data) > MaxFileBytes {
		return nil, 0, fmt.Errorf("%w: more than %d bytes", errMalformed, MaxFileBytes)
	}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if f.Format != formatTag {
		return nil, 0, fmt.Errorf("%w: format %q, want %q", errMalformed, backends.Escape(truncate(f.Format, 64)), formatTag)
	}
	recs = make(map[string]record, len(f.Entries))
	for name, j := range f.Entries {
		r, ok := j.record(name)
		if !ok {
			skipped++
			continue
		}
		recs[name] = r
	}
	return recs, skipped, nil
}

// record validates j, the entry of name, and converts it.
func (j recordJSON) record(name string) (record, bool) {
	if name != selfKey && (backends.NameProblem(name) != "" || name == backends.MetaFileName) {
		return record{}, false
	}
	switch {
	case len(j.Version) > maxVersionBytes:
		return record{}, false
	case j.Dir && j.Version != "", !j.Dir && j.Version == "":
		return record{}, false
	case j.Mode != nil && *j.Mode > 0o7777:
		return record{}, false
	case j.SHA256 != "" && !isSHA256(j.SHA256):
		return record{}, false
	case j.Dir && j.Type != "":
		return record{}, false
	}
	switch j.Type {
	case "", "symlink", "fifo", "socket":
	default:
		return record{}, false
	}
	r := record{version: j.Version, dir: j.Dir}
	if j.MTime != nil {
		t := time.Unix(0, *j.MTime)
		r.meta.MTime = &t
	}
	if j.Mode != nil {
		m := os.FileMode(*j.Mode)
		r.meta.Mode = &m
	}
	r.meta.UID, r.meta.GID, r.meta.SHA256, r.meta.Type = j.UID, j.GID, j.SHA256, j.Type
	return r, true
}

// isSHA256 reports whether s is 64 lower-case hex digits.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
