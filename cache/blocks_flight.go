package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cloudmount/cloudmount/backends"
)

// Fetch opens a stream of length bytes of the version k names of the file
// at k.Path, starting at off (length < 0: to the end). k.Size is the size
// the cache was told the file has: a backend that can tell should fail a
// reply that speaks of another, and one that can read a version by its
// name (backends.VersionReader) reads k.Version. The stream must end when
// ctx does, and should have an idle deadline of its own; the cache closes
// it.
type Fetch func(ctx context.Context, k Key, off, length int64) (io.ReadCloser, error)

// errAbandoned ends a read-ahead block that its reader gave up before it
// was fetched; anyone else waiting for it fetches it again.
var errAbandoned = errors.New("read-ahead abandoned")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bufPool recycles block buffers, so that streaming a large file does not
// allocate a megabyte per block.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, BlockSize)
	return &b
}}

// flight is one block being fetched (single-flight: one fetch per block
// however many readers wait for it), and then its content in memory for as
// long as someone holds a reference: the fetcher until the block is stored,
// each waiting reader, and the window of the reader that read it ahead.
type flight struct {
	b       *Blocks
	id      blockID
	path    string
	version string // the content's Version (Key.Version)
	off     int64  // offset of the block in the file
	size    int    // expected length of the block
	// fileSize is the size of the whole file the block was asked for.
	fileSize int64
	// cache: the block is stored on disk once fetched (the file has a
	// version).
	cache bool
	// token: the flight holds one of b.tokens (read-ahead).
	token bool

	refs atomic.Int32
	buf  *[]byte // from bufPool; nil once released

	done chan struct{} // closed when data and err are set
	data []byte        // the content that arrived (short if the file is)
	err  error

	// dropped (under b.mu): the path's blocks were dropped while the block
	// was fetched; it is not stored.
	dropped bool
}

// newFlight returns a flight holding one reference.
func (b *Blocks) newFlight(id blockID, k Key, size int, cache bool) *flight {
	f := &flight{b: b, id: id, path: k.Path, version: k.Version, off: id.idx * BlockSize, size: size, fileSize: k.Size, cache: cache,
		buf: bufPool.Get().(*[]byte), done: make(chan struct{})}
	f.refs.Store(1)
	return f
}

func (f *flight) ref() { f.refs.Add(1) }

// key is the Key of the file the block belongs to.
func (f *flight) key() Key { return Key{Path: f.path, Version: f.version, Size: f.fileSize} }

// unref drops a reference; the last one returns the buffer.
func (f *flight) unref() {
	if f.refs.Add(-1) != 0 {
		return
	}
	buf := f.buf
	f.buf, f.data = nil, nil
	bufPool.Put(buf)
	if f.token {
		<-f.b.tokens
	}
}

// wait waits for the block's content.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyOut copies the content at off within the block into p; it returns
// fewer bytes than p holds only at the end of the content.
func (f *flight) copyOut(p []byte, off int) int {
	if off >= len(f.data) {
		return 0
	}
	return copy(p, f.data[off:])
}

// claim finds block id: on disk (bf), being fetched (f, referenced), or
// neither, in which case it registers a new flight and reports owner: the
// caller must have it fetched and finished. An owned flight holds three
// references (the caller's, the fetcher's and the inflight map's) and a
// count in b.wg until it is finished. token asks for a read-ahead token;
// without one free, nothing is claimed. Nothing is found once b is closed.
func (b *Blocks) claim(id blockID, k Key, cache, token bool) (bf *blockFile, f *flight, owner bool) {
	fileSize := k.Size
	size := blockLen(fileSize, id.idx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, nil, false
	}
	if cache {
		if bf = b.lookupLocked(id); bf != nil {
			return bf, nil, false
		}
	}
	if f = b.inflight[id]; f != nil && f.fileSize == fileSize {
		f.ref()
		return nil, f, false
	}
	if token {
		select {
		case b.tokens <- struct{}{}:
		default:
			return nil, nil, false
		}
	}
	f = b.newFlight(id, k, size, cache)
	f.token = token
	f.ref() // the fetcher's
	b.wg.Add(1)
	if f2 := b.inflight[id]; f2 == nil {
		// A flight of another size (the file changed size but not version)
		// is left alone; this one is not stored.
		f.ref()
		b.inflight[id] = f
	} else {
		f.cache = false
	}
	b.misses.Add(1)
	return nil, f, true
}

// finish publishes what was fetched of the block and drops the fetcher's
// reference (and the inflight map's). A complete block goes to the writers
// to be stored on disk, with the fetcher's reference and count in b.wg; when
// they lag behind by more than their queue holds, the fetch waits.
func (b *Blocks) finish(f *flight, n int, err error) {
	if err == nil {
		f.data = (*f.buf)[:n]
	}
	f.err = err
	b.fetched.Add(uint64(n))
	close(f.done)
	if err == nil && n == f.size && f.cache {
		b.writes <- f
		return
	}
	b.mu.Lock()
	if b.inflight[f.id] == f {
		delete(b.inflight, f.id)
		f.unref()
	}
	b.mu.Unlock()
	if ce := (*ContentError)(nil); errors.As(err, &ce) {
		// The server's content is not the version its entry names: what
		// was fetched of it before (earlier blocks of the same stream,
		// maybe still on their way to disk) is no better.
		b.Drop(f.path)
	}
	f.unref()
	b.wg.Done()
}

// writer stores the blocks handed to it until the cache closes.
func (b *Blocks) writer() {
	for f := range b.writes {
		b.store(f)
		f.unref()
		b.wg.Done()
	}
}

// store writes a fetched block to disk and takes it into the index. A
// failure only means the block is not cached. The flight stays in the
// inflight map until ristretto has the block, so that a cache with nothing
// in flight has settled.
func (b *Blocks) store(f *flight) {
	bf, err := b.writeBlock(f)
	b.mu.Lock()
	// Blocks fetched while the cache closes are kept: close waits for them.
	keep := err == nil && !f.dropped
	if keep {
		pb := b.paths[f.id.ph]
		if pb == nil {
			pb = &pathBlocks{path: f.path, blocks: map[blockID]*blockFile{}}
			b.paths[f.id.ph] = pb
		}
		if pb.path == "" {
			pb.path = f.path
		}
		if old := pb.blocks[f.id]; old != nil {
			b.removeLocked(old)
			if b.paths[f.id.ph] == nil {
				b.paths[f.id.ph] = pb
			}
		}
		pb.blocks[f.id] = bf
		b.used += bf.cost
		b.count++
	}
	b.mu.Unlock()
	switch {
	case err != nil:
		b.writeErrors.Add(1)
	case !keep:
		os.Remove(bf.name)
	case !b.admit(bf):
		b.forget(bf)
	default:
		// Dropped while it was handed over: ristretto must not keep it.
		b.mu.Lock()
		gone := b.lookupLocked(bf.id) != bf
		b.mu.Unlock()
		if gone {
			b.del(bf)
		}
	}

	b.mu.Lock()
	if b.inflight[f.id] == f {
		delete(b.inflight, f.id)
		defer f.unref()
	}
	orphan := !keep && b.unusedLocked(f.id.ph)
	b.mu.Unlock()
	if orphan {
		b.removeDir(b.pathDir(f.id.ph))
	}
}

// writeBlock writes f's content to a temporary file and renames it to its
// block name, so that a block file is never seen half-written.
func (b *Blocks) writeBlock(f *flight) (*blockFile, error) {
	dir := b.pathDir(f.id.ph)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b.writePathFile(f.id.ph, dir, f.path)
	tmp, err := createBlockFile(dir)
	if err != nil {
		return nil, err
	}
	crc := crc32.Checksum(f.data, castagnoli)
	err = writeDirect(tmp, f.data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	name := filepath.Join(dir, blockName(f.id, crc))
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("store block: %w", err)
	}
	bf := &blockFile{id: f.id, name: name, size: int64(len(f.data)), cost: blockCost(int64(len(f.data))), crc: crc}
	bf.verified.Store(true)
	return bf, nil
}

// writePathFile records the path a block directory belongs to, once.
func (b *Blocks) writePathFile(ph pathHash, dir, p string) {
	b.mu.Lock()
	pb := b.paths[ph]
	done := pb != nil && pb.named
	b.mu.Unlock()
	if done {
		return
	}
	name := filepath.Join(dir, "path")
	if cur, err := os.ReadFile(name); err != nil || string(cur) != p {
		tmp, err := os.CreateTemp(dir, ".tmp-")
		if err != nil {
			return
		}
		_, err = tmp.WriteString(p)
		if cerr := tmp.Close(); err != nil || cerr != nil || os.Rename(tmp.Name(), name) != nil {
			os.Remove(tmp.Name())
			return
		}
	}
	b.mu.Lock()
	if pb := b.paths[ph]; pb != nil {
		pb.named = true
	}
	b.mu.Unlock()
}

// fetchOne fetches one block with a ranged read of just that block,
// retrying once, and finishes its flight.
func (b *Blocks) fetchOne(ctx context.Context, f *flight, fetch Fetch) {
	var n int
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var rc io.ReadCloser
		if rc, err = fetch(ctx, f.key(), f.off, int64(f.size)); err != nil {
			if !retryable(err) {
				break
			}
			continue
		}
		n, err = f.readBlock(rc)
		rc.Close()
		if err == nil || !retryable(err) {
			break
		}
	}
	b.finish(f, n, err)
}

// readBlock fills the block's buffer from r. A stream that ends before the
// block is full is an error (ErrShortContent): the server's content is not
// the size its entry said, so it is not that version, and it is neither
// served nor cached.
func (f *flight) readBlock(r io.Reader) (int, error) {
	n, err := io.ReadFull(r, (*f.buf)[:f.size])
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = &ContentError{Path: f.path, Size: f.fileSize,
			Reason: fmt.Sprintf("the server's content ended at byte %d", f.off+int64(n))}
	}
	return n, err
}

// checkEnd makes sure that a stream read to the end of the file has nothing
// more: a longer content is not the version the cache was told of.
func (f *flight) checkEnd(r io.Reader) error {
	if f.off+int64(f.size) != f.fileSize {
		return nil
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return &ContentError{Path: f.path, Size: f.fileSize, Reason: "the server's content goes on past its end"}
	}
	return nil
}

// ContentError is content from the server that disagrees with the size of
// the file's entry. It matches backends.ErrProtocol.
type ContentError struct {
	Path   string
	Size   int64 // the size the entry said
	Reason string
}

// Error reads "read a.txt: the server's content ended at byte 90, but the
// file has 100 bytes".
func (e *ContentError) Error() string {
	return fmt.Sprintf("read %s: %s, but the file has %d bytes", backends.Escape(e.Path), e.Reason, e.Size)
}

// Unwrap makes a ContentError match backends.ErrProtocol.
func (e *ContentError) Unwrap() error { return backends.ErrProtocol }

// readFile reads the block content at off into p from file, the block's
// file on disk, checking the block against its checksum the first time
// after start-up.
func (bf *blockFile) readFile(file *os.File, p []byte, off int) (int, error) {
	want := min(len(p), int(bf.size)-off)
	if want <= 0 {
		return 0, nil
	}
	if !bf.verified.Load() {
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		data := (*buf)[:bf.size]
		if n, err := file.ReadAt(data, 0); n != len(data) {
			return 0, fmt.Errorf("block %s: short file (%d of %d bytes): %v", bf.name, n, len(data), err)
		}
		if crc32.Checksum(data, castagnoli) != bf.crc {
			return 0, fmt.Errorf("block %s: checksum mismatch", bf.name)
		}
		bf.verified.Store(true)
		return copy(p[:want], data[off:]), nil
	}
	n, err := file.ReadAt(p[:want], int64(off))
	if n != want {
		return 0, fmt.Errorf("block %s: short read (%d of %d bytes): %v", bf.name, n, want, err)
	}
	return n, nil
}

// retryable reports whether a failed fetch is worth one more try: a
// connection that broke. Not a server that did not answer within the
// timeout (asking again would make the caller wait as long again), not an
// answer that will be the same (missing, refused, content of another
// size).
func retryable(err error) bool {
	var ce *ContentError
	switch {
	case errors.As(err, &ce),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, backends.ErrUnavailable), errors.Is(err, backends.ErrAuth),
		errors.Is(err, backends.ErrNotFound), errors.Is(err, backends.ErrPermission),
		errors.Is(err, backends.ErrIsDir), errors.Is(err, backends.ErrProtocol):
		return false
	}
	return true
}
