package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	bolt "go.etcd.io/bbolt"
)

var metaBucket = []byte("meta")

// Index remembers metadata (mtime with nanoseconds, mode, owner, hash, type)
// for servers that cannot store it, keyed by path and by the server's version
// of the file: a record is valid while the remote version is unchanged and is
// ignored (then overwritten) once it changes.
type Index struct {
	db *bolt.DB
}

// record is the on-disk form of one path's metadata.
type record struct {
	// Version is the server version the record belongs to (see versionKey).
	Version string  `json:"v"`
	MTime   int64   `json:"mtime,omitempty"` // unix nanoseconds, 0 = unset
	Mode    *uint32 `json:"mode,omitempty"`
	UID     *uint32 `json:"uid,omitempty"`
	GID     *uint32 `json:"gid,omitempty"`
	SHA256  string  `json:"sha256,omitempty"`
	Type    string  `json:"type,omitempty"`
}

func openIndex(path string) (*Index, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open metadata index %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(metaBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open metadata index %s: %w", path, err)
	}
	// Sets from parallel uploads share one commit (Batch): one sync for
	// all of them rather than one each, a millisecond later at most.
	db.MaxBatchDelay = time.Millisecond
	return &Index{db: db}, nil
}

func (ix *Index) close() error { return ix.db.Close() }

// rootKey is the key of the mount root's record. bbolt takes no empty key,
// and every other path is relative ("a/b"), so "/" names no other path.
const rootKey = "/"

// keyOf is the key of path's record.
func keyOf(path string) []byte {
	if path == "" {
		return []byte(rootKey)
	}
	return []byte(path)
}

// versionKey identifies the server's version of an entry (its Version). A
// directory's metadata does not depend on its content (its server mtime
// changes with every child added), so it has one version for as long as it
// exists.
func versionKey(e backends.Entry) string {
	if e.IsDir {
		return "dir"
	}
	return e.Version
}

// Get returns the metadata remembered for path, if it belongs to the server's
// version e.
func (ix *Index) Get(path string, e backends.Entry) (backends.Meta, bool) {
	var rec record
	found := false
	if versionKey(e) == "" {
		return backends.Meta{}, false
	}
	ix.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(metaBucket).Get(keyOf(path))
		if v != nil && json.Unmarshal(v, &rec) == nil && rec.Version == versionKey(e) {
			found = true
		}
		return nil
	})
	if !found {
		return backends.Meta{}, false
	}
	return rec.meta(), true
}

// Set merges the set fields of m into the record of path for the server's
// version e; a record of another version is replaced. The write is durable
// when Set returns; Sets at the same time are committed together.
func (ix *Index) Set(path string, e backends.Entry, m backends.Meta) error {
	if versionKey(e) == "" {
		return nil
	}
	// Batch may run the function twice: it merges into what it reads, so
	// a second run writes the same record.
	return ix.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket)
		var rec record
		if v := b.Get(keyOf(path)); v != nil {
			if json.Unmarshal(v, &rec) != nil || rec.Version != versionKey(e) {
				rec = record{}
			}
		}
		rec.Version = versionKey(e)
		rec.merge(m)
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(keyOf(path), v)
	})
}

// Rename moves the records of from and everything below it to to.
func (ix *Index) Rename(from, to string) error {
	// Most renames (rsync's temporary file to its final name) concern
	// paths the index does not know: a read, no write and no sync.
	if !ix.hasTree(from) && !ix.hasTree(to) {
		return nil
	}
	return ix.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket)
		deleteTree(b, to)
		type kv struct{ k, v []byte }
		var moved []kv
		eachInTree(b, from, func(k, v []byte) {
			nk := append([]byte(to), k[len(from):]...)
			moved = append(moved, kv{nk, append([]byte(nil), v...)})
		})
		deleteTree(b, from)
		for _, m := range moved {
			if err := b.Put(m.k, m.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remove forgets path and everything below it.
func (ix *Index) Remove(path string) error {
	if !ix.hasTree(path) {
		return nil
	}
	return ix.db.Update(func(tx *bolt.Tx) error {
		deleteTree(tx.Bucket(metaBucket), path)
		return nil
	})
}

// hasTree reports whether the index has a record at or below path.
func (ix *Index) hasTree(path string) bool {
	found := false
	ix.db.View(func(tx *bolt.Tx) error {
		eachInTree(tx.Bucket(metaBucket), path, func(k, v []byte) { found = true })
		return nil
	})
	return found
}

// eachInTree calls fn for the record of path and of every path below it;
// for the root, that is every record.
func eachInTree(b *bolt.Bucket, path string, fn func(k, v []byte)) {
	prefix := []byte(path + "/")
	if path == "" {
		prefix = nil
	} else if v := b.Get([]byte(path)); v != nil {
		fn([]byte(path), v)
	}
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) > 0 {
			fn(k, v)
		}
	}
}

func deleteTree(b *bolt.Bucket, path string) {
	var keys [][]byte
	eachInTree(b, path, func(k, _ []byte) { keys = append(keys, append([]byte(nil), k...)) })
	for _, k := range keys {
		b.Delete(k)
	}
}

// merge sets the fields of m in the record.
func (r *record) merge(m backends.Meta) {
	cur := r.meta()
	cur.Merge(m)
	r.MTime = 0
	if cur.MTime != nil {
		r.MTime = cur.MTime.UnixNano()
	}
	r.Mode = nil
	if cur.Mode != nil {
		v := uint32(*cur.Mode)
		r.Mode = &v
	}
	r.UID, r.GID, r.SHA256, r.Type = cur.UID, cur.GID, cur.SHA256, cur.Type
}

func (r record) meta() backends.Meta {
	var m backends.Meta
	if r.MTime != 0 {
		t := time.Unix(0, r.MTime)
		m.MTime = &t
	}
	if r.Mode != nil {
		mode := os.FileMode(*r.Mode)
		m.Mode = &mode
	}
	m.UID, m.GID, m.SHA256, m.Type = r.UID, r.GID, r.SHA256, r.Type
	return m
}
