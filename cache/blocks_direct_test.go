package cache

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
)

// TestBlockFilesHoldWhatWasWritten writes blocks of aligned and unaligned
// lengths, from aligned and unaligned buffers, where O_DIRECT works (the
// test's temporary directory) and where it may not (/dev/shm), and reads
// them back.
func TestBlockFilesHoldWhatWasWritten(t *testing.T) {
	dirs := []string{t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "blocks-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs = append(dirs, d)
		}
	}
	buf := make([]byte, BlockSize+directAlign)
	for i := range buf {
		buf[i] = byte(rand.IntN(256))
	}
	for _, dir := range dirs {
		for _, c := range []struct{ off, n int }{{0, BlockSize}, {0, BlockSize - 1}, {0, 100}, {0, directAlign},
			{1, BlockSize - 1}, {0, 0}, {0, 3*directAlign + 7}} {
			data := buf[c.off : c.off+c.n]
			f, err := createBlockFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeDirect(f, data); err != nil {
				t.Fatalf("%s: write %d bytes at buffer offset %d: %v", dir, c.n, c.off, err)
			}
			f.Close()
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: %d bytes written at buffer offset %d, read back %d (%v)", dir, c.n, c.off, len(got), err)
			}
			os.Remove(f.Name())
		}
	}
}
