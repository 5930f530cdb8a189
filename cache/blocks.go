package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/ristretto/v2"
)

// The block cache keeps file content read from the server on local disk, in
// blocks of BlockSize bytes (the last block of a file is shorter):
//
//	blocks/<ph[:2]>/<ph>/path                 the file's path, for DropTree
//	blocks/<ph[:2]>/<ph>/<vh>-<index>-<crc>   one block
//
// where ph is a hash of the path, vh a hash of the server's version of the
// file (its Version) and crc the CRC-32C of the block's bytes. Directories are
// 0700 and files 0600.
//
// A block is written to a temporary name in its directory and renamed into
// place, so a block file never has a name before all of its bytes are
// written. Nothing is fsynced (a lost block is fetched again), so after a
// power cut a block may come back short or full of zeros: the checksum in its
// name is verified the first time the block is read after start-up, and a
// block that fails the check is deleted and fetched again. Blocks written by
// this process are trusted without a check.
//
// The in-memory index (Blocks.paths) says which blocks are on disk; it is
// what a read consults. ristretto holds the same blocks as its items, with
// their size on disk as cost, and decides what to evict when the cache is
// over its limit (TinyLFU admission, sampled LFU eviction; a read of a block
// counts as an access). Its eviction and rejection callbacks delete the
// block from the index and from disk. Every block is clean (writes go to
// staging files, never here), so any block may be evicted at any time; a
// reader that has a block file open keeps reading it after it is unlinked.
//
// Blocks are keyed by path and version: a read of a new version of a path
// drops the blocks of every other version of it, and Drop and DropTree drop
// a path's blocks when the file is removed or renamed.
//
// Failures of the cache itself (disk full, a block file that cannot be
// written or read) never fail a read: the block is served from the network
// and simply not cached.

// BlockSize is the size of a cached block and of the unit of a fetch.
const BlockSize = 1 << 20

const (
	// defaultLimit is the size limit when none is given, capped to half of
	// the space free for the cache when it opens.
	defaultLimit = 4 << 30
	// maxAhead is how many blocks a sequential reader reads ahead at most.
	maxAhead = 4
	// readaheadBuffers bounds the blocks held in memory for read-ahead by
	// all readers together (demand reads are not counted).
	readaheadBuffers = 32
	// writers store fetched blocks on disk; writeQueue more wait for them.
	writers    = 2
	writeQueue = 4
	// diskUnit is what a block costs at least, and the unit its cost is
	// rounded up to: the allocation unit of common filesystems.
	diskUnit = 4096
)

// Key identifies one version of a file's content.
type Key struct {
	// Path is the file's path in the mount (slash-separated).
	Path string
	// Version is the server's version of the content (the backend's
	// Version: it changes whenever the content does). "" means there is
	// none: the content is fetched without being cached.
	Version string
	// Size is the file's size in bytes in this version.
	Size int64
}

// BlockStats are the figures of the block cache, for `cloudmount status`.
type BlockStats struct {
	// Limit and Used are the size limit and the bytes of blocks on disk.
	Limit int64 `json:"limit"`
	Used  int64 `json:"used"`
	// Blocks counts the blocks on disk.
	Blocks int `json:"blocks"`
	// Hits counts reads (or the part of a read in one block) answered from
	// disk or from a block another reader was already fetching; Misses
	// counts blocks fetched from the server.
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// FetchedBytes is what was read from the server.
	FetchedBytes uint64 `json:"fetched_bytes"`
	// Evicted counts blocks deleted to stay under the limit.
	Evicted uint64 `json:"evicted"`
	// WriteErrors counts blocks that could not be stored (disk full…);
	// their reads were served from the network.
	WriteErrors uint64 `json:"write_errors"`
}

// Blocks is the on-disk block cache of file content read from the server.
//
// Lock order: Reader.mu before Blocks.mu. Blocks.mu is never held during
// disk or network I/O nor during a call into ristretto (whose callbacks
// take it).
type Blocks struct {
	dir    string
	limit  int64
	policy *ristretto.Cache[string, *blockFile]
	// pmu keeps calls into policy from running while it closes (ristretto
	// panics then); pclosed is set when it has.
	pmu     sync.RWMutex
	pclosed bool
	// tokens holds one value per read-ahead block held in memory.
	tokens chan struct{}
	// writes queues fetched blocks for the writers, which store them on
	// disk while the next ones arrive.
	writes chan *flight
	// ctx ends when the cache closes; every fetch is made under it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the streamers and the blocks being fetched or stored.
	wg sync.WaitGroup

	mu sync.Mutex // protects the fields below
	// paths holds the blocks on disk, by path hash.
	paths map[pathHash]*pathBlocks
	// inflight holds the blocks being fetched.
	inflight map[blockID]*flight
	used     int64
	count    int
	closed   bool

	hits, misses, fetched, evicted, writeErrors atomic.Uint64
}

type (
	pathHash    [16]byte
	versionHash [8]byte
)

// blockID names one block of one version of a file.
type blockID struct {
	ph  pathHash
	vh  versionHash
	idx int64
}

// policyKey is the block's key in ristretto.
func (id blockID) policyKey() string {
	var b [32]byte
	copy(b[:16], id.ph[:])
	copy(b[16:24], id.vh[:])
	binary.LittleEndian.PutUint64(b[24:], uint64(id.idx))
	return string(b[:])
}

func hashPath(p string) pathHash {
	s := sha256.Sum256([]byte(p))
	return pathHash(s[:16])
}

func hashVersion(v string) versionHash {
	s := sha256.Sum256([]byte(v))
	return versionHash(s[:8])
}

// blockFile is one block on disk.
type blockFile struct {
	id   blockID
	name string // full file name
	size int64  // bytes of content
	cost int64  // size rounded up to diskUnit
	// verified: the file's content matched its checksum, or this process
	// wrote it.
	verified atomic.Bool
	crc      uint32
}

// pathBlocks is what the cache holds of one path.
type pathBlocks struct {
	path   string // "" when unknown (no path file)
	named  bool   // the path file is on disk
	blocks map[blockID]*blockFile
}

func blockCost(size int64) int64 {
	return max(diskUnit, (size+diskUnit-1)/diskUnit*diskUnit)
}

// pathDir is the directory of a path's blocks.
func (b *Blocks) pathDir(ph pathHash) string {
	h := hex.EncodeToString(ph[:])
	return filepath.Join(b.dir, h[:2], h)
}

// blockName is the file name of a block with checksum crc.
func blockName(id blockID, crc uint32) string {
	return hex.EncodeToString(id.vh[:]) + "-" + strconv.FormatInt(id.idx, 10) + "-" + strconv.FormatUint(uint64(crc), 16)
}

// parseBlockName reads a block file name back.
func parseBlockName(name string) (vh versionHash, idx int64, crc uint32, ok bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 || len(parts[0]) != 2*len(vh) {
		return vh, 0, 0, false
	}
	if _, err := hex.Decode(vh[:], []byte(parts[0])); err != nil {
		return vh, 0, 0, false
	}
	idx, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || idx < 0 {
		return vh, 0, 0, false
	}
	c, err := strconv.ParseUint(parts[2], 16, 32)
	if err != nil {
		return vh, 0, 0, false
	}
	return vh, idx, uint32(c), true
}

// blockLen is the length of block idx of a file of size bytes.
func blockLen(size, idx int64) int {
	return int(min(BlockSize, size-idx*BlockSize))
}

// close stops every fetch, waits until what was fetched is stored, and
// closes the index. Blocks on disk stay for the next mount.
func (b *Blocks) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	close(b.writes)
	b.pmu.Lock()
	b.pclosed = true
	b.pmu.Unlock()
	// ristretto's Close calls the eviction callback for every item; closed
	// keeps the files.
	b.policy.Close()
	return nil
}

// Stats returns the cache's figures.
func (b *Blocks) Stats() BlockStats {
	b.mu.Lock()
	s := BlockStats{Limit: b.limit, Used: b.used, Blocks: b.count}
	b.mu.Unlock()
	s.Hits, s.Misses = b.hits.Load(), b.misses.Load()
	s.FetchedBytes = b.fetched.Load()
	s.Evicted, s.WriteErrors = b.evicted.Load(), b.writeErrors.Load()
	return s
}

// Cached reports how many bytes of k's content are in the cache on disk.
func (b *Blocks) Cached(k Key) int64 {
	if k.Version == "" {
		return 0
	}
	ph, vh := hashPath(k.Path), hashVersion(k.Version)
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	if pb := b.paths[ph]; pb != nil {
		for id, bf := range pb.blocks {
			if id.vh == vh && id.idx*BlockSize < k.Size && int(bf.size) == blockLen(k.Size, id.idx) {
				n += bf.size
			}
		}
	}
	return n
}
