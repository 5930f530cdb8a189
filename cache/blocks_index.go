package cache

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/cloudmount/cloudmount/backends"
)

// The index of blocks on disk, and ristretto's part in it: what is dropped
// when a file changes or goes, and what is evicted to stay under the limit.

// Drop deletes the cached blocks of every version of the file at p: call it
// when the file is removed, renamed or replaced. Blocks being fetched for p
// are not stored.
func (b *Blocks) Drop(p string) {
	b.dropPaths([]pathHash{hashPath(p)})
}

// DropTree drops the blocks of dir and of every path below it ("" is the
// whole mount): call it when a directory is renamed or removed.
func (b *Blocks) DropTree(dir string) {
	dir = strings.Trim(dir, "/")
	b.mu.Lock()
	var phs []pathHash
	for ph, pb := range b.paths {
		if backends.InTree(pb.path, dir) {
			phs = append(phs, ph)
		}
	}
	for id, f := range b.inflight {
		if backends.InTree(f.path, dir) {
			phs = append(phs, id.ph)
		}
	}
	b.mu.Unlock()
	b.dropPaths(phs)
}

func (b *Blocks) dropPaths(phs []pathHash) {
	var gone []*blockFile
	b.mu.Lock()
	for _, ph := range phs {
		if pb := b.paths[ph]; pb != nil {
			for _, bf := range pb.blocks {
				gone = append(gone, bf)
				b.used -= bf.cost
				b.count--
			}
			delete(b.paths, ph)
		}
		for id, f := range b.inflight {
			if id.ph == ph {
				f.dropped = true
			}
		}
	}
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	for _, bf := range gone {
		b.del(bf)
	}
	for _, ph := range phs {
		os.RemoveAll(b.pathDir(ph))
	}
}

// keepVersion drops the blocks of path hash ph that belong to a version
// other than vh: the server's content changed.
func (b *Blocks) keepVersion(ph pathHash, vh versionHash) {
	var gone []*blockFile
	b.mu.Lock()
	if pb := b.paths[ph]; pb != nil {
		for id, bf := range pb.blocks {
			if id.vh != vh {
				gone = append(gone, bf)
				b.removeLocked(bf)
			}
		}
	}
	for id, f := range b.inflight {
		if id.ph == ph && id.vh != vh {
			f.dropped = true
		}
	}
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	for _, bf := range gone {
		b.del(bf)
		os.Remove(bf.name)
	}
}

// lookupLocked returns the block on disk, or nil. b.mu must be held.
func (b *Blocks) lookupLocked(id blockID) *blockFile {
	if pb := b.paths[id.ph]; pb != nil {
		return pb.blocks[id]
	}
	return nil
}

// removeLocked takes bf out of the index if it is still there, and reports
// whether it was. b.mu must be held.
func (b *Blocks) removeLocked(bf *blockFile) bool {
	pb := b.paths[bf.id.ph]
	if pb == nil || pb.blocks[bf.id] != bf {
		return false
	}
	delete(pb.blocks, bf.id)
	b.used -= bf.cost
	b.count--
	if len(pb.blocks) == 0 {
		delete(b.paths, bf.id.ph)
	}
	return true
}

// forget deletes a block whose file turned out to be missing or damaged.
func (b *Blocks) forget(bf *blockFile) {
	b.mu.Lock()
	ok := b.removeLocked(bf) && !b.closed
	b.mu.Unlock()
	if ok {
		b.del(bf)
		os.Remove(bf.name)
	}
}

// onEvict is ristretto's callback for an evicted or rejected block: the
// block leaves the index and the disk. It runs on ristretto's goroutine.
func (b *Blocks) onEvict(it *ristretto.Item[*blockFile]) {
	bf := it.Value
	if bf == nil {
		return
	}
	b.mu.Lock()
	ok := !b.closed && b.removeLocked(bf)
	empty := ok && b.unusedLocked(bf.id.ph)
	b.mu.Unlock()
	if !ok {
		return
	}
	b.evicted.Add(1)
	os.Remove(bf.name)
	if empty {
		b.removeDir(filepath.Dir(bf.name))
	}
}

// unusedLocked reports whether the path hash ph has no blocks on disk and
// none being fetched. b.mu must be held.
func (b *Blocks) unusedLocked(ph pathHash) bool {
	if b.paths[ph] != nil {
		return false
	}
	for id := range b.inflight {
		if id.ph == ph {
			return false
		}
	}
	return true
}

// removeDir deletes the directory of a path that has no blocks left. It is
// best effort: a block of the same path stored meanwhile may lose its path
// file (DropTree then misses it) or fail to be stored.
func (b *Blocks) removeDir(dir string) {
	os.Remove(filepath.Join(dir, "path"))
	os.Remove(dir)
}

// withPolicy runs fn on ristretto unless the cache is closing, and
// reports whether it ran.
func (b *Blocks) withPolicy(fn func(p *ristretto.Cache[string, *blockFile])) bool {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	if b.pclosed {
		return false
	}
	fn(b.policy)
	return true
}

// admit hands a block on disk to ristretto, which may evict others to make
// room or reject it (then it is deleted). It reports whether it was handed
// over.
func (b *Blocks) admit(bf *blockFile) bool {
	key := bf.id.policyKey()
	set := false
	b.withPolicy(func(p *ristretto.Cache[string, *blockFile]) {
		for try := 0; try < 3 && !set; try++ {
			if set = p.Set(key, bf, bf.cost); !set {
				// The set buffer is full: let ristretto catch up.
				p.Wait()
			}
		}
	})
	return set
}

// del takes a block out of ristretto.
func (b *Blocks) del(bf *blockFile) {
	b.withPolicy(func(p *ristretto.Cache[string, *blockFile]) { p.Del(bf.id.policyKey()) })
}

// touch tells ristretto that a block was read, for its frequency counts.
func (b *Blocks) touch(id blockID) {
	b.withPolicy(func(p *ristretto.Cache[string, *blockFile]) { p.Get(id.policyKey()) })
}

// settle waits until ristretto has applied every block handed to it (and
// made its evictions).
func (b *Blocks) settle() {
	b.withPolicy(func(p *ristretto.Cache[string, *blockFile]) { p.Wait() })
}
