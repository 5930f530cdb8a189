package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/cache"
)

// mountStore mounts b with the given store (so that a test can mount the
// same cache directory again) and returns the mountpoint and a function
// that unmounts it.
func mountStore(t *testing.T, b backends.Backend, store *cache.Store, o Options) (string, func()) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	mnt := t.TempDir()
	m, err := Mount(mnt, b, store, o)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			if err := m.Server.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
			}
		})
	}
	t.Cleanup(unmount)
	return mnt, unmount
}

func openStore(t *testing.T, dir string) *cache.Store {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// randomBytes returns n reproducible random bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func TestSecondReadAfterRemountComesFromCache(t *testing.T) {
	b := memory.New()
	data := randomBytes(5*cache.BlockSize+4321, 1)
	b.Mkdir(t.Context(), "dir")
	b.Put(t.Context(), "dir/big.bin", bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	dir := t.TempDir()

	store := openStore(t, dir)
	mnt, unmount := mountStore(t, b, store, Options{})
	p := filepath.Join(mnt, "dir", "big.bin")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: equal=%v err=%v", bytes.Equal(got, data), err)
	}
	if n := b.Calls("Read"); n == 0 || n > 2 {
		t.Fatalf("a cold sequential read made %d ranged reads, want one stream", n)
	}
	unmount()
	store.Close()

	// Mount again with the same cache directory; the server then goes away
	// once the file was looked up.
	store = openStore(t, dir)
	defer store.Close()
	mnt, _ = mountStore(t, b, store, Options{AttrTimeout: time.Minute})
	p = filepath.Join(mnt, "dir", "big.bin")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	reads := b.Calls("Read")
	b.FailWith(backends.ErrUnavailable)
	defer b.FailWith(nil)
	got, err = os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after remount, server offline: equal=%v err=%v", bytes.Equal(got, data), err)
	}
	if n := b.Calls("Read") - reads; n != 0 {
		t.Fatalf("read after remount asked the server %d times, want 0", n)
	}
	if s := store.Blocks.Stats(); s.Misses != 0 || s.Hits == 0 {
		t.Fatalf("cache stats after remount: %+v", s)
	}
}

func TestConcurrentReadersFetchEachBlockOnce(t *testing.T) {
	b := memory.New()
	data := randomBytes(6*cache.BlockSize+99, 2)
	b.Put(t.Context(), "f", bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	store := openStore(t, t.TempDir())
	defer store.Close()
	mnt, _ := mountStore(t, b, store, Options{})
	p := filepath.Join(mnt, "f")

	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(p)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer f.Close()
			// Half read from the start, half from the middle onwards.
			start := int64(0)
			if i%2 == 1 {
				start = int64(len(data) / 2)
			}
			got := make([]byte, int64(len(data))-start)
			if _, err := f.ReadAt(got, start); err != nil && err != io.EOF {
				errs <- err.Error()
				return
			}
			if !bytes.Equal(got, data[start:]) {
				errs <- "reader " + strconv.Itoa(i) + ": content differs"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	blocks := uint64(len(data)+cache.BlockSize-1) / cache.BlockSize
	if s := store.Blocks.Stats(); s.Misses != blocks {
		t.Fatalf("%d readers fetched %d blocks of a file of %d blocks, want each once", readers, s.Misses, blocks)
	}
}

func TestNewVersionDropsCachedBlocks(t *testing.T) {
	b := memory.New()
	v1 := randomBytes(2*cache.BlockSize, 3)
	e1, _ := b.Put(t.Context(), "f", bytes.NewReader(v1), int64(len(v1)), backends.PutOptions{})
	store := openStore(t, t.TempDir())
	defer store.Close()
	mnt, _ := mountStore(t, b, store, Options{AttrTimeout: 20 * time.Millisecond})
	p := filepath.Join(mnt, "f")
	if got, _ := os.ReadFile(p); !bytes.Equal(got, v1) {
		t.Fatal("first version read wrong")
	}
	k1 := cache.Key{Path: "f", Version: e1.Version, Size: e1.Size}
	waitFor(t, func() bool { return store.Blocks.Cached(k1) == e1.Size })

	v2 := randomBytes(cache.BlockSize+5, 4)
	e2, _ := b.Put(t.Context(), "f", bytes.NewReader(v2), int64(len(v2)), backends.PutOptions{})
	// Close-to-open: once the attribute timeout has passed, an open reads
	// the new version.
	deadline := time.Now().Add(2 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		got, _ := os.ReadFile(p)
		if bytes.Equal(got, v2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("read after the server's version changed has old content")
		}
	}
	if c := store.Blocks.Cached(k1); c != 0 {
		t.Fatalf("%d bytes of the old version still cached", c)
	}
	k2 := cache.Key{Path: "f", Version: e2.Version, Size: e2.Size}
	waitFor(t, func() bool { return store.Blocks.Cached(k2) == e2.Size })
}

func TestReadWithoutVersion(t *testing.T) {
	b := &noVersion{memory.New()}
	data := []byte("no etag here")
	b.Put(t.Context(), "f", bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	store := openStore(t, t.TempDir())
	defer store.Close()
	mnt, _ := mountStore(t, b, store, Options{})
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q %v", got, err)
	}
}

// noVersion is a backend that breaks its contract: files without a Version.
type noVersion struct{ *memory.Backend }

func (b *noVersion) Stat(ctx context.Context, p string) (backends.Entry, error) {
	e, err := b.Backend.Stat(ctx, p)
	e.Version = ""
	return e, err
}

func (b *noVersion) List(ctx context.Context, p string) ([]backends.Entry, error) {
	es, err := b.Backend.List(ctx, p)
	for i := range es {
		es[i].Version = ""
	}
	return es, err
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}

// TestReadThroughput measures cold and warm sequential reads of a large
// file through FUSE, and the memory the daemon needs for them, against a
// server that generates the content (so that the server holds nothing in
// memory). Set CLOUDMOUNT_BENCH=<MiB> to run it.
func TestReadThroughput(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("CLOUDMOUNT_BENCH"))
	if mib <= 0 {
		t.Skip("set CLOUDMOUNT_BENCH=<MiB> to measure")
	}
	size := int64(mib) << 20
	b := &generated{Backend: memory.New(), size: size, pattern: randomBytes(1<<20+4093, 5)}
	b.Put(t.Context(), "big", strings.NewReader(""), 0, backends.PutOptions{})

	// What the server delivers without the mount (what curl would see).
	start := time.Now()
	rc, _ := b.Read(t.Context(), "big", 0, -1)
	io.Copy(io.Discard, rc)
	direct := time.Since(start)

	dir := t.TempDir()
	store := openStore(t, dir)
	mnt, unmount := mountStore(t, b, store, Options{})
	p := filepath.Join(mnt, "big")
	rss0 := resetPeakRSS()
	cold := timeRead(t, p, b)
	peak := peakRSS()
	unmount()
	store.Close()

	store = openStore(t, dir)
	defer store.Close()
	mnt, _ = mountStore(t, b, store, Options{})
	reads := b.reads()
	warm := timeRead(t, filepath.Join(mnt, "big"), b)
	if n := b.reads() - reads; n != 0 {
		t.Errorf("warm read after remount made %d reads from the server", n)
	}
	rate := func(d time.Duration) string {
		return strconv.FormatFloat(float64(size)/(1<<20)/d.Seconds(), 'f', 0, 64) + " MiB/s"
	}
	t.Logf("%d MiB: server alone %v (%s); cold through the mount %v (%s, %.2fx); warm after remount %v (%s)",
		mib, direct.Round(time.Millisecond), rate(direct), cold.Round(time.Millisecond), rate(cold),
		cold.Seconds()/direct.Seconds(), warm.Round(time.Millisecond), rate(warm))
	t.Logf("RSS before the cold read %d MiB, peak during it %d MiB", rss0>>20, peak>>20)
}

// TestReadThroughputWebDAV measures a cold and a warm read of the file at
// $CLOUDMOUNT_BENCH_URL (a WebDAV collection URL and a file name in it,
// separated by a space) through the mount, for comparison with curl.
func TestReadThroughputWebDAV(t *testing.T) {
	spec := strings.Fields(os.Getenv("CLOUDMOUNT_BENCH_URL"))
	if len(spec) != 2 {
		t.Skip("set CLOUDMOUNT_BENCH_URL='http://host/dav/ file' to measure")
	}
	be, err := webdav.New(t.Context(), webdav.Config{URL: spec[0]})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, round := range []string{"cold", "warm after remount"} {
		store := openStore(t, dir)
		mnt, unmount := mountStore(t, be, store, Options{})
		start := time.Now()
		f, err := os.Open(filepath.Join(mnt, spec[1]))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
		f.Close()
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d MiB in %v (%.0f MiB/s); %+v", round, n>>20, d.Round(time.Millisecond),
			float64(n)/(1<<20)/d.Seconds(), store.Blocks.Stats())
		unmount()
		store.Close()
	}
}

// timeRead reads the file at p with 1 MiB reads, checks its content and
// returns how long it took.
func timeRead(t *testing.T, p string, b *generated) time.Duration {
	t.Helper()
	start := time.Now()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	want := make([]byte, 1<<20)
	var off int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			b.fill(want[:n], off)
			if !bytes.Equal(buf[:n], want[:n]) {
				t.Fatalf("content differs at %d", off)
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if off != b.size {
		t.Fatalf("read %d bytes of %d", off, b.size)
	}
	return time.Since(start)
}

// resetPeakRSS resets the process's peak RSS and returns its current RSS.
func resetPeakRSS() int64 {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return procStatus("VmRSS:")
}

func peakRSS() int64 { return procStatus("VmHWM:") }

func procStatus(field string) int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// generated is a server whose file "big" has size bytes of a repeating
// pattern, made up as it is read.
type generated struct {
	*memory.Backend
	size    int64
	pattern []byte
	mu      sync.Mutex
	n       int
}

func (g *generated) patch(e backends.Entry) backends.Entry {
	if e.Name == "big" {
		e.Size, e.Version = g.size, "gen-1"
	}
	return e
}

func (g *generated) Stat(ctx context.Context, p string) (backends.Entry, error) {
	e, err := g.Backend.Stat(ctx, p)
	return g.patch(e), err
}

func (g *generated) List(ctx context.Context, p string) ([]backends.Entry, error) {
	es, err := g.Backend.List(ctx, p)
	for i := range es {
		es[i] = g.patch(es[i])
	}
	return es, err
}

func (g *generated) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	if p != "big" {
		return g.Backend.Read(ctx, p, off, length)
	}
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
	end := g.size
	if length >= 0 {
		end = min(end, off+length)
	}
	return io.NopCloser(&genReader{g: g, off: off, end: end}), nil
}

func (g *generated) reads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// fill writes the content at off into p.
func (g *generated) fill(p []byte, off int64) {
	for len(p) > 0 {
		k := copy(p, g.pattern[off%int64(len(g.pattern)):])
		p, off = p[k:], off+int64(k)
	}
}

type genReader struct {
	g        *generated
	off, end int64
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.end-r.off)]
	r.g.fill(p, r.off)
	r.off += int64(len(p))
	return len(p), nil
}

func TestHashOfAFileJustReadComesFromCache(t *testing.T) {
	b := memory.New()
	data := randomBytes(3*cache.BlockSize+777, 3)
	b.Put(t.Context(), "f", bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	store := openStore(t, t.TempDir())
	defer store.Close()
	mnt, _ := mountStore(t, b, store, Options{AttrTimeout: time.Minute})
	p := filepath.Join(mnt, "f")
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: equal=%v err=%v", bytes.Equal(got, data), err)
	}
	reads := b.Calls("Read")
	buf := make([]byte, 64)
	k, err := syscall.Getxattr(p, "user.cloudmount.sha256", buf)
	if err != nil {
		t.Fatalf("getxattr: %v", err)
	}
	if want := sha256.Sum256(data); string(buf[:k]) != hex.EncodeToString(want[:]) {
		t.Fatalf("hash %q, want %x", buf[:k], want)
	}
	if n := b.Calls("Read") - reads; n != 0 {
		t.Fatalf("hashing a file just read asked the server for its data %d times, want 0", n)
	}
}
