package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// source is a fake server for the block cache: files in memory, with the
// fetches counted.
type source struct {
	mu    sync.Mutex
	files map[string][]byte
	fail  error
	// gate, when set, holds every fetch until it is closed.
	gate chan struct{}

	fetches atomic.Int64 // streams opened
	bytes   atomic.Int64 // bytes read from them
	ranges  []string     // "off+length" of each fetch
}

func newSource() *source { return &source{files: map[string][]byte{}} }

func (s *source) put(p string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[p] = data
}

func (s *source) fetch(ctx context.Context, k Key, off, length int64) (io.ReadCloser, error) {
	p := k.Path
	s.mu.Lock()
	gate, fail, data := s.gate, s.fail, s.files[p]
	s.ranges = append(s.ranges, rangeString(off, length))
	s.mu.Unlock()
	s.fetches.Add(1)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	data = data[min(off, int64(len(data))):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(&countingReader{r: bytes.NewReader(data), n: &s.bytes}), nil
}

func rangeString(off, length int64) string {
	return strconv.FormatInt(off, 10) + "+" + strconv.FormatInt(length, 10)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// content returns n reproducible random bytes.
func content(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// quiesce waits until every fetched block is stored and ristretto has
// applied it.
func (b *Blocks) quiesce() {
	for {
		b.mu.Lock()
		n := len(b.inflight)
		b.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.settle()
}

func openTestBlocks(t *testing.T, dir string, limit int64) *Blocks {
	t.Helper()
	b, err := openBlocks(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.close() })
	return b
}

// readAll reads k through r in reads of chunk bytes, in order.
func readAll(t *testing.T, r *Reader, k Key, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for off := int64(0); off < k.Size; {
		n, err := r.ReadAt(t.Context(), k, buf, off)
		if err != nil {
			t.Fatalf("read %s at %d: %v", k.Path, off, err)
		}
		if n == 0 {
			t.Fatalf("read %s at %d: no bytes before the end", k.Path, off)
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
	return out
}

// diskUsage sums the sizes of the block files under dir.
func diskUsage(t *testing.T, dir string) (bytes int64, files int) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "path" {
			info, _ := d.Info()
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files
}

func TestBlocksSequentialReadOneStreamThenFromDisk(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	data := content(5*BlockSize+12345, 1)
	src.put("dir/file", data)
	k := Key{Path: "dir/file", Version: "v1", Size: int64(len(data))}

	b := openTestBlocks(t, dir, 0)
	r := b.NewReader(src.fetch)
	got := readAll(t, r, k, 128<<10)
	r.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("content read through the cache differs")
	}
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("a sequential read opened %d streams (%v), want 1", n, src.ranges)
	}
	if n := src.bytes.Load(); n != int64(len(data)) {
		t.Fatalf("fetched %d bytes for a file of %d", n, len(data))
	}
	b.quiesce()
	if c := b.Cached(k); c != k.Size {
		t.Fatalf("cached %d bytes of %d", c, k.Size)
	}

	// Second read, in another reader: all from disk.
	r = b.NewReader(src.fetch)
	got = readAll(t, r, k, 1<<20)
	r.Close()
	if !bytes.Equal(got, data) || src.fetches.Load() != 1 {
		t.Fatalf("second read: equal=%v, fetches=%d (want 1)", bytes.Equal(got, data), src.fetches.Load())
	}
	if s := b.Stats(); s.Hits == 0 || s.Misses != 6 || s.Blocks != 6 || s.Used < k.Size {
		t.Fatalf("stats %+v", s)
	}
}

func TestBlocksReopenServesFromDisk(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	data := content(3*BlockSize+1, 2)
	src.put("f", data)
	k := Key{Path: "f", Version: `"etag-1"`, Size: int64(len(data))}

	b, err := openBlocks(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := b.NewReader(src.fetch)
	readAll(t, r, k, 64<<10)
	r.Close()
	if err := b.close(); err != nil {
		t.Fatal(err)
	}
	if _, files := diskUsage(t, dir); files != 4 {
		t.Fatalf("%d block files on disk after close, want 4", files)
	}

	src.fail = errors.New("server unreachable")
	b = openTestBlocks(t, dir, 0)
	if s := b.Stats(); s.Blocks != 4 || s.Used != 3*BlockSize+diskUnit {
		t.Fatalf("after reopen: %+v", s)
	}
	before := src.fetches.Load()
	r = b.NewReader(src.fetch)
	defer r.Close()
	if got := readAll(t, r, k, 100000); !bytes.Equal(got, data) {
		t.Fatal("content after reopen differs")
	}
	if n := src.fetches.Load() - before; n != 0 {
		t.Fatalf("%d fetches after reopen, want 0", n)
	}
	// The path is known again, for DropTree.
	b.DropTree("")
	if c := b.Cached(k); c != 0 {
		t.Fatalf("DropTree of the root left %d bytes", c)
	}
}

func TestBlocksSingleFlight(t *testing.T) {
	src := newSource()
	data := content(BlockSize, 3)
	src.put("f", data)
	src.gate = make(chan struct{})
	k := Key{Path: "f", Version: "1", Size: int64(len(data))}
	b := openTestBlocks(t, t.TempDir(), 0)

	const readers = 16
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			off := int64(i * 4096)
			n, err := b.ReadAt(context.Background(), k, buf, off, src.fetch)
			if err == nil && (n != len(buf) || !bytes.Equal(buf, data[off:off+4096])) {
				err = errors.New("wrong content")
			}
			errs <- err
		}()
	}
	// Let every reader reach the wait, then release the one fetch.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		f := b.inflight[blockID{ph: hashPath("f"), vh: hashVersion("1")}]
		waiting := f != nil && f.refs.Load() >= readers+2
		b.mu.Unlock()
		if waiting || time.Now().After(deadline) {
			break
		}
	}
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("%d concurrent readers of one block caused %d fetches, want 1", readers, n)
	}
}

func TestBlocksRandomReadFetchesJustItsBlock(t *testing.T) {
	src := newSource()
	data := content(10*BlockSize, 4)
	src.put("f", data)
	k := Key{Path: "f", Version: "1", Size: int64(len(data))}
	b := openTestBlocks(t, t.TempDir(), 0)
	r := b.NewReader(src.fetch)
	defer r.Close()
	buf := make([]byte, 4096)
	off := int64(3*BlockSize + BlockSize/2)
	if n, err := r.ReadAt(t.Context(), k, buf, off); err != nil || n != 4096 || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("random read: %d %v", n, err)
	}
	off = 7*BlockSize - 100 // across two blocks
	if n, err := r.ReadAt(t.Context(), k, buf, off); err != nil || n != 4096 || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("read across blocks: %d %v", n, err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	want := []string{"3145728+1048576", "6291456+1048576", "7340032+1048576"}
	if strings.Join(src.ranges, " ") != strings.Join(want, " ") {
		t.Fatalf("fetched %v, want %v", src.ranges, want)
	}
}

func TestBlocksReadAheadIsBounded(t *testing.T) {
	src := newSource()
	data := content(64*BlockSize, 5)
	src.put("big", data)
	k := Key{Path: "big", Version: "1", Size: int64(len(data))}
	b := openTestBlocks(t, t.TempDir(), 0)
	r := b.NewReader(src.fetch)
	buf := make([]byte, 128<<10)
	for off := int64(0); off < 2*BlockSize; off += int64(len(buf)) {
		if _, err := r.ReadAt(t.Context(), k, buf, off); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	b.close() // waits for the streamer
	if n := src.bytes.Load(); n > (2+maxAhead+1)*BlockSize {
		t.Fatalf("reading 2 MiB fetched %d MiB", n>>20)
	}
}

func TestBlocksEvictionKeepsUnderLimit(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	const limit = 4 * BlockSize
	b := openTestBlocks(t, dir, limit)
	r := b.NewReader(src.fetch)
	defer r.Close()
	for i := range 12 {
		p := "f" + strconv.Itoa(i)
		data := content(BlockSize, uint64(10+i))
		src.put(p, data)
		k := Key{Path: p, Version: "1", Size: BlockSize}
		buf := make([]byte, 1000)
		// Read at random offsets, so that no read-ahead is made.
		if n, err := r.ReadAt(t.Context(), k, buf, 5000); err != nil || !bytes.Equal(buf[:n], data[5000:6000]) {
			t.Fatalf("read %s: %d %v", p, n, err)
		}
		b.quiesce()
		if s := b.Stats(); s.Used > limit {
			t.Fatalf("after %d files: %d bytes used, limit %d", i+1, s.Used, limit)
		}
		if used, _ := diskUsage(t, dir); used > limit {
			t.Fatalf("after %d files: %d bytes on disk, limit %d", i+1, used, limit)
		}
	}
	if s := b.Stats(); s.Evicted == 0 || s.Blocks == 0 {
		t.Fatalf("nothing evicted or nothing kept: %+v", s)
	}

	// Reopening with a smaller limit drops what is over it.
	r.Close()
	b.close()
	b = openTestBlocks(t, dir, 2*BlockSize)
	if used, _ := diskUsage(t, dir); used > 2*BlockSize || b.Stats().Used > 2*BlockSize {
		t.Fatalf("after reopen with a 2 MiB limit: %d bytes on disk, %+v", used, b.Stats())
	}
}

func TestBlocksVersionChangeDropsOldBlocks(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	v1 := content(2*BlockSize, 20)
	src.put("f", v1)
	k1 := Key{Path: "f", Version: "1", Size: int64(len(v1))}
	b := openTestBlocks(t, dir, 0)
	r := b.NewReader(src.fetch)
	defer r.Close()
	readAll(t, r, k1, 1<<20)
	b.quiesce()
	if b.Cached(k1) != k1.Size {
		t.Fatal("first version not cached")
	}

	v2 := content(BlockSize+7, 21)
	src.put("f", v2)
	k2 := Key{Path: "f", Version: "2", Size: int64(len(v2))}
	if got := readAll(t, r, k2, 1<<20); !bytes.Equal(got, v2) {
		t.Fatal("read of the new version has old content")
	}
	b.quiesce()
	if c := b.Cached(k1); c != 0 {
		t.Fatalf("%d bytes of the old version still cached", c)
	}
	if used, files := diskUsage(t, dir); files != 2 || used != k2.Size {
		t.Fatalf("on disk: %d files, %d bytes; want the new version's 2 blocks", files, used)
	}
}

func TestBlocksDrop(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	b := openTestBlocks(t, dir, 0)
	keys := map[string]Key{}
	for _, p := range []string{"a/x", "a/y/z", "ab", "b"} {
		data := content(BlockSize/2, 30)
		src.put(p, data)
		k := Key{Path: p, Version: "v", Size: int64(len(data))}
		keys[p] = k
		if _, err := b.ReadAt(t.Context(), k, make([]byte, 10), 0, src.fetch); err != nil {
			t.Fatal(err)
		}
	}
	b.Drop("b")
	b.DropTree("a")
	b.quiesce()
	for p, k := range keys {
		want := int64(0)
		if p == "ab" {
			want = k.Size
		}
		if c := b.Cached(k); c != want {
			t.Errorf("%s: %d bytes cached, want %d", p, c, want)
		}
	}
	if used, files := diskUsage(t, dir); files != 1 || used != BlockSize/2 {
		t.Fatalf("on disk after drops: %d files, %d bytes", files, used)
	}
}

func TestBlocksCacheFailureStillReads(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	data := content(BlockSize+10, 40)
	src.put("f", data)
	k := Key{Path: "f", Version: "1", Size: int64(len(data))}
	b := openTestBlocks(t, dir, 0)
	// The block directory of f cannot be made: a file is in the way.
	ph := hashPath("f")
	top := filepath.Dir(b.pathDir(ph))
	if err := os.WriteFile(top, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := b.NewReader(src.fetch)
	defer r.Close()
	if got := readAll(t, r, k, 1<<20); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	b.quiesce() // the writers have tried to store what was read
	if s := b.Stats(); s.WriteErrors == 0 || s.Blocks != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBlocksDamagedBlockIsFetchedAgain(t *testing.T) {
	dir := t.TempDir()
	src := newSource()
	data := content(BlockSize, 50)
	src.put("f", data)
	k := Key{Path: "f", Version: "1", Size: int64(len(data))}
	b, _ := openBlocks(dir, 0)
	b.ReadAt(t.Context(), k, make([]byte, 10), 0, src.fetch)
	b.close()

	// A power cut left a block full of zeros, and a temporary file.
	var block string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "path" {
			block = p
		}
		return nil
	})
	os.WriteFile(block, make([]byte, BlockSize), 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(block), ".tmp-123"), []byte("torn"), 0o600)

	b = openTestBlocks(t, dir, 0)
	before := src.fetches.Load()
	buf := make([]byte, 100)
	if n, err := b.ReadAt(t.Context(), k, buf, 1000, src.fetch); err != nil || !bytes.Equal(buf[:n], data[1000:1100]) {
		t.Fatalf("read of a damaged block: %d %v, content equal %v", n, err, bytes.Equal(buf[:n], data[1000:1100]))
	}
	if src.fetches.Load() != before+1 {
		t.Fatal("damaged block not fetched again")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(block), ".tmp-123")); !os.IsNotExist(err) {
		t.Fatal("temporary file left by a crash not removed")
	}
}

func TestBlocksOffline(t *testing.T) {
	src := newSource()
	data := content(3*BlockSize, 60)
	src.put("f", data)
	k := Key{Path: "f", Version: "1", Size: int64(len(data))}
	b := openTestBlocks(t, t.TempDir(), 0)
	buf := make([]byte, 10)
	if _, err := b.ReadAt(t.Context(), k, buf, 0, src.fetch); err != nil {
		t.Fatal(err)
	}
	src.fail = errors.New("unreachable")
	if n, err := b.ReadAt(t.Context(), k, buf, 5, src.fetch); err != nil || !bytes.Equal(buf[:n], data[5:15]) {
		t.Fatalf("cached read while offline: %d %v", n, err)
	}
	if _, err := b.ReadAt(t.Context(), k, buf, 2*BlockSize, src.fetch); err == nil {
		t.Fatal("read of a block not cached while offline succeeded")
	}
}

func TestBlocksNoVersionIsNotCached(t *testing.T) {
	src := newSource()
	data := content(1000, 70)
	src.put("f", data)
	k := Key{Path: "f", Size: int64(len(data))}
	b := openTestBlocks(t, t.TempDir(), 0)
	for range 2 {
		buf := make([]byte, 2000)
		if n, err := b.ReadAt(t.Context(), k, buf, 0, src.fetch); err != nil || !bytes.Equal(buf[:n], data) {
			t.Fatalf("read: %d %v", n, err)
		}
		// The next read comes after this one's fetch has ended (a
		// concurrent one would share it).
		b.quiesce()
	}
	if src.fetches.Load() != 2 || b.Stats().Blocks != 0 {
		t.Fatalf("fetches %d, stats %+v", src.fetches.Load(), b.Stats())
	}
}

// A server whose content is shorter or longer than the file's entry says
// gives an error, not a short read, and nothing of it is cached; once the
// server is right again (same version), the read returns its bytes.
func TestBlocksServerContentOfAnotherSize(t *testing.T) {
	right := bytes.Repeat([]byte("0123456789"), BlockSize/10+30) // a block and 300 bytes
	for _, c := range []struct {
		name  string
		wrong []byte
		// ranged: a ranged read of one block can tell too; a longer content
		// shows only to a stream read to the end (the backend checks ranged
		// replies against the size it is given).
		ranged bool
	}{
		{"short", right[:len(right)-90], true},
		{"short block", right[:BlockSize/2], true},
		{"long", append(append([]byte(nil), right...), "and more"...), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := newSource()
			src.put("f", c.wrong)
			k := Key{Path: "f", Version: "1", Size: int64(len(right))}
			b := openTestBlocks(t, t.TempDir(), 0)
			readers := []*Reader{b.NewReader(src.fetch)}
			if c.ranged {
				readers = append(readers, nil)
			}
			for _, r := range readers {
				buf := make([]byte, len(right))
				var n int
				var err error
				if r != nil { // sequential: read-ahead streams
					n, err = r.ReadAt(t.Context(), k, buf, 0)
					r.Close()
				} else { // one ranged read per block
					n, err = b.ReadAt(t.Context(), k, buf, 0, src.fetch)
				}
				var ce *ContentError
				if !errors.As(err, &ce) || !errors.Is(err, backends.ErrProtocol) {
					t.Fatalf("read %d bytes, err %v; want a ContentError", n, err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("but the file has %d bytes", len(right))) {
					t.Errorf("message %q does not say the size", err)
				}
				b.quiesce()
				if st := b.Stats(); st.Blocks != 0 {
					t.Fatalf("after a reply of the wrong size the cache holds %d blocks", st.Blocks)
				}
			}
			src.put("f", right) // the server is fixed, same version
			buf := make([]byte, len(right))
			if n, err := b.ReadAt(t.Context(), k, buf, 0, src.fetch); err != nil || !bytes.Equal(buf[:n], right) {
				t.Fatalf("after the fix: %d bytes, %v", n, err)
			}
		})
	}
}

func TestBlockNames(t *testing.T) {
	id := blockID{ph: hashPath("a"), vh: hashVersion("v"), idx: 12}
	vh, idx, crc, ok := parseBlockName(blockName(id, 0xdeadbeef))
	if !ok || vh != id.vh || idx != 12 || crc != 0xdeadbeef {
		t.Fatalf("round trip: %v %v %d %x", ok, vh, idx, crc)
	}
	for _, bad := range []string{"", "x-1-2", "0011223344556677-1", "0011223344556677--1-2", "0011223344556677-1-zz", ".tmp-1"} {
		if _, _, _, ok := parseBlockName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
