package cache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Block files are written with O_DIRECT where the filesystem takes it: the
// data goes from the block's buffer to the disk without a copy into the
// page cache. On a disk that takes 2 GB/s that way, a buffered write of the
// same megabyte costs several times the CPU (the copy and the page
// allocation), and the writers fall behind a loopback server, which made
// the reader of a large file wait for them. A block is read back rarely and
// through the page cache as usual.

// directAlign is the alignment O_DIRECT wants of the buffer's address, the
// length and the offset (the logical block size of common disks, and the
// page size).
const directAlign = 4096

// createBlockFile creates a new temporary file in dir, opened for O_DIRECT
// writes where the filesystem allows them.
func createBlockFile(dir string) (*os.File, error) {
	for range 10 {
		var r [8]byte
		rand.Read(r[:])
		name := filepath.Join(dir, ".tmp-"+hex.EncodeToString(r[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o600)
		if errors.Is(err, unix.EINVAL) {
			// tmpfs and some others refuse O_DIRECT.
			f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, errors.New("create block file: no free temporary name")
}

// writeDirect writes data at the start of f: the aligned head directly
// where f and the buffer allow it, the rest through the page cache.
func writeDirect(f *os.File, data []byte) error {
	head := len(data) &^ (directAlign - 1)
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	direct := err == nil && fl&unix.O_DIRECT != 0
	if direct && head > 0 && uintptr(unsafe.Pointer(&data[0]))%directAlign == 0 {
		n, err := f.Write(data[:head])
		if err == nil {
			data = data[n:]
		} else if !errors.Is(err, unix.EINVAL) {
			return err
		} else if _, serr := f.Seek(0, 0); serr != nil {
			return serr
		}
	}
	if direct && len(data) > 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT); err != nil {
			return err
		}
	}
	_, err = f.Write(data)
	return err
}
