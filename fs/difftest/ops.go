// Package difftest drives a mounted cloudmount and a local directory with
// the same seeded random file operations and checks, step by step, that both
// answer alike; at checkpoints it also waits for the uploads and compares the
// server's bytes and the hash attribute with the local directory. A failure
// names the seed, so that the run can be replayed with DIFFTEST_SEED.
package difftest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// op is one file operation, applied alike to both trees.
type op struct {
	kind       string
	path, to   string
	off, n     int64
	mode       uint32
	data       []byte
	fsync      bool // fsync before close
	closeFirst bool // mmap: close the descriptor before unmapping
	msync      bool // mmap: msync before unmapping
}

func (o op) String() string {
	s := fmt.Sprintf("%s %s", o.kind, o.path)
	if o.to != "" {
		s += " → " + o.to
	}
	switch o.kind {
	case "create", "append":
		s += fmt.Sprintf(" %d bytes (sha %x…)", len(o.data), shortSum(o.data))
	case "pwrite", "mmap", "reopen":
		s += fmt.Sprintf(" at %d, %d bytes", o.off, len(o.data))
	case "truncate":
		s += fmt.Sprintf(" to %d", o.n)
	case "fallocate":
		s += fmt.Sprintf(" mode %#x at %d, %d bytes", o.mode, o.off, o.n)
	case "copy", "read":
		s += fmt.Sprintf(" at %d, %d bytes", o.off, o.n)
	}
	if o.fsync {
		s += " +fsync"
	}
	if o.kind == "mmap" {
		s += fmt.Sprintf(" msync=%v close-first=%v", o.msync, o.closeFirst)
	}
	return s
}

// fallocModes are the fallocate modes a FUSE filesystem is asked for (the
// kernel answers EOPNOTSUPP to the others itself).
var fallocModes = []uint32{
	0,
	unix.FALLOC_FL_KEEP_SIZE,
	unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
	unix.FALLOC_FL_ZERO_RANGE,
	unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
}

// apply runs o in root. It returns what the operation read, if anything,
// for comparison.
func (o op) apply(root string) ([]byte, error) {
	p := filepath.Join(root, o.path)
	switch o.kind {
	case "create":
		return nil, writeFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, o.data, 0, o.fsync)
	case "append":
		return nil, writeFile(p, os.O_WRONLY|os.O_APPEND, o.data, -1, o.fsync)
	case "pwrite":
		return nil, writeFile(p, os.O_WRONLY, o.data, o.off, o.fsync)
	case "truncate":
		return nil, os.Truncate(p, o.n)
	case "fallocate":
		return nil, withFile(p, os.O_RDWR, o.fsync, func(f *os.File) error {
			return unix.Fallocate(int(f.Fd()), o.mode, o.off, o.n)
		})
	case "rename":
		return nil, os.Rename(p, filepath.Join(root, o.to))
	case "unlink":
		return nil, os.Remove(p)
	case "mmap":
		if childProcess {
			return nil, mmapInChild(p, o)
		}
		return nil, mmapWrite(p, o)
	case "copy":
		return nil, copyRange(p, filepath.Join(root, o.to), o.off, o.n)
	case "reopen":
		return reopen(p, o)
	case "open-unlink":
		return openUnlink(p, o.data)
	case "read":
		return readRange(p, o.off, o.n)
	}
	return nil, fmt.Errorf("unknown operation %q", o.kind)
}

// withFile opens p, runs fn on it, fsyncs if asked and closes it; the
// first error wins, and close's error counts (it is where write-back
// filesystems report).
func withFile(p string, flag int, fsync bool, fn func(*os.File) error) error {
	f, err := os.OpenFile(p, flag, 0o644)
	if err != nil {
		return err
	}
	err = fn(f)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFile writes data at off (off < 0: at the descriptor's position).
func writeFile(p string, flag int, data []byte, off int64, fsync bool) error {
	return withFile(p, flag, fsync, func(f *os.File) error {
		var err error
		if off < 0 {
			_, err = f.Write(data)
		} else {
			_, err = f.WriteAt(data, off)
		}
		return err
	})
}

// mmapWrite changes bytes of p through a shared mapping. The offset is
// taken modulo the size, so that it always lies inside the file.
func mmapWrite(p string, o op) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		f.Close()
		return err
	}
	size := fi.Size()
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return err
	}
	off := o.off % size
	copy(m[off:], o.data)
	if o.msync {
		err = unix.Msync(m, unix.MS_SYNC)
	}
	if o.closeFirst {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if uerr := unix.Munmap(m); err == nil {
			err = uerr
		}
		return err
	}
	if uerr := unix.Munmap(m); err == nil {
		err = uerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyRange copies n bytes of from, starting at off, to the same offset of
// to with copy_file_range(2), creating to if needed.
func copyRange(from, to string, off, n int64) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	return withFile(to, os.O_WRONLY|os.O_CREATE, false, func(out *os.File) error {
		roff, woff := off, off
		for n > 0 {
			k, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(n), 0)
			if err != nil {
				return err
			}
			if k == 0 {
				return nil
			}
			n -= int64(k)
		}
		return nil
	})
}

// reopen works on one descriptor: write, shrink, write again, read it all.
func reopen(p string, o op) ([]byte, error) {
	var got []byte
	err := withFile(p, os.O_RDWR, o.fsync, func(f *os.File) error {
		if _, err := f.WriteAt(o.data, o.off); err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if err := f.Truncate(fi.Size() - fi.Size()/4); err != nil {
			return err
		}
		if _, err := f.WriteAt(o.data[:len(o.data)/2], o.off/2); err != nil {
			return err
		}
		got, err = io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
		return err
	})
	return got, err
}

// openUnlink removes a file while it is open, then writes and reads it
// through the descriptor.
func openUnlink(p string, data []byte) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return nil, err
	}
	return io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
}

// readRange reads n bytes at off.
func readRange(p string, off, n int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return buf[:k], err
}

// errnoOf reduces an error to what a program sees: its errno.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// gen makes random operations over a fixed set of names, so that they
// meet: renames over existing files, rewrites with earlier content.
type gen struct {
	rng     *rand.Rand
	names   []string
	maxSize int
	history [][]byte // earlier contents, for rewrites with the same bytes
}

func (g *gen) name() string { return g.names[g.rng.IntN(len(g.names))] }

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	// Runs of one byte among random ones: compressible, and holes and
	// zero ranges are not the only zeros.
	for i := 0; i < n; {
		run := 1 + g.rng.IntN(64)
		v := byte(g.rng.IntN(256))
		for j := 0; j < run && i < n; j++ {
			b[i] = v
			if g.rng.IntN(2) == 0 {
				b[i] = byte(g.rng.IntN(256))
			}
			i++
		}
	}
	return b
}

func (g *gen) size() int64 {
	switch g.rng.IntN(4) {
	case 0:
		return int64(g.rng.IntN(64))
	case 1:
		return int64(g.rng.IntN(8192))
	}
	return int64(g.rng.IntN(g.maxSize))
}

// content is new random bytes, or now and then an earlier content.
func (g *gen) content() []byte {
	if len(g.history) > 0 && g.rng.IntN(4) == 0 {
		return g.history[g.rng.IntN(len(g.history))]
	}
	b := g.bytes(int(g.size()))
	if len(g.history) < 16 {
		g.history = append(g.history, b)
	} else {
		g.history[g.rng.IntN(len(g.history))] = b
	}
	return b
}

// next returns a random operation. size is the current size of a file in
// the local tree (-1 if it does not exist), to aim offsets near the data.
func (g *gen) next(size func(string) int64) op {
	o := op{path: g.name(), fsync: g.rng.IntN(8) == 0}
	cur := max(size(o.path), 0)
	off := func() int64 { return int64(g.rng.IntN(int(cur) + 4096)) }
	switch k := g.rng.IntN(100); {
	case k < 18:
		o.kind, o.data = "create", g.content()
	case k < 24:
		o.kind, o.data = "append", g.bytes(g.rng.IntN(10000))
	case k < 38:
		o.kind, o.off, o.data = "pwrite", off(), g.bytes(1+g.rng.IntN(20000))
	case k < 46:
		o.kind, o.n = "truncate", g.size()
	case k < 58:
		o.kind = "fallocate"
		o.mode = fallocModes[g.rng.IntN(len(fallocModes))]
		o.off, o.n = off(), 1+int64(g.rng.IntN(20000))
	case k < 65:
		o.kind, o.to = "rename", g.name()
	case k < 70:
		o.kind = "unlink"
	case k < 78:
		o.kind, o.off, o.data = "mmap", off(), g.bytes(1+g.rng.IntN(5000))
		o.closeFirst, o.msync = g.rng.IntN(2) == 0, g.rng.IntN(2) == 0
	case k < 84:
		o.kind, o.to, o.off, o.n = "copy", g.name(), off(), 1+int64(g.rng.IntN(20000))
	case k < 90:
		o.kind, o.off, o.data = "reopen", off(), g.bytes(2+g.rng.IntN(8000))
	case k < 93:
		o.kind, o.data = "open-unlink", g.bytes(1+g.rng.IntN(3000))
	default:
		o.kind, o.off, o.n = "read", off(), 1+int64(g.rng.IntN(20000))
	}
	return o
}
