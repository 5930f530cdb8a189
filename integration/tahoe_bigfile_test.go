package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// tahoeBigSize is the size of the big-file round trip; -short makes it
// tahoeBigShortSize.
const (
	tahoeBigSize      = 200 << 20
	tahoeBigShortSize = 64 << 20
)

// testTahoeBigFile writes a large file of pseudo-random bytes through the
// mount (hashing it as it goes), runs `cloudmount sync`, reads the file
// straight from the grid (web API) and then through a mount with a fresh
// cache directory, and compares the sha256 of each with what was written.
// 200 MiB; 64 MiB with -short.
func testTahoeBigFile(t *testing.T, g *tahoeGrid) {
	size := int64(tahoeBigSize)
	if testing.Short() {
		size = tahoeBigShortSize
	}
	mib := float64(size) / (1 << 20)
	d := g.newDir(t)
	m := mountTahoe(t, d, tahoeMountOptions{})
	begin := time.Now()
	f, err := os.Create(m.Path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{7, 7, 7}), size)
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, 1<<20)); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after writing: %v", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	wrote := time.Since(begin)
	took := m.Sync(t)
	total := time.Since(begin)
	t.Logf("FIGURE: tahoe %.0f MiB: write until close %.1fs, cloudmount sync %.1fs, until on the grid %.1fs (%.1f MiB/s)",
		mib, wrote.Seconds(), took.Seconds(), total.Seconds(), mib/total.Seconds())
	t.Logf("FIGURE: tahoe %.0f MiB: daemon peak RSS %.1f MiB", mib, float64(m.PeakRSS(t))/(1<<20))

	begin = time.Now()
	got, n, err := d.sha256Of("big.bin")
	if err != nil || got != want || n != size {
		t.Fatalf("grid: big.bin has %d bytes with sha256 %s (%v), want %d bytes with %s", n, got, err, size, want)
	}
	t.Logf("FIGURE: tahoe %.0f MiB: read straight from the grid (web API) %.1fs", mib, time.Since(begin).Seconds())

	m = remountTahoe(t, d, m, true, tahoeMountOptions{})
	begin = time.Now()
	got, err = sha256File(m.Path("big.bin"))
	if err != nil || got != want {
		t.Fatalf("sha256 read back through a mount with a fresh cache directory: %s %v, want %s", got, err, want)
	}
	read := time.Since(begin)
	t.Logf("FIGURE: tahoe %.0f MiB: read through a mount with a fresh cache directory %.1fs (%.1f MiB/s); round trip in all %.1fs",
		mib, read.Seconds(), mib/read.Seconds(), total.Seconds()+read.Seconds())
}
