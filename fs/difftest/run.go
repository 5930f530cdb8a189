package difftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config says what to compare besides the two trees.
type Config struct {
	// Seed makes the run; 0 takes DIFFTEST_SEED, or else the clock.
	Seed uint64
	// Ops is the number of operations, times DIFFTEST_SCALE when set.
	Ops int
	// CheckEvery is the number of operations between two checkpoints
	// (default 200). There is always one at the end.
	CheckEvery int
	// MaxSize bounds file sizes (default 256 KiB).
	MaxSize int
	// Sync waits until the mount has uploaded everything; it is called at
	// every checkpoint. Nil: the server is not checked.
	Sync func() error
	// ServerFiles returns every regular file on the server with its bytes,
	// by path relative to the mount root ("d/f1").
	ServerFiles func() (map[string][]byte, error)
	// Hash: the mount's user.cloudmount.sha256 must be the hash of the
	// local file's bytes at every checkpoint.
	Hash bool
}

// hashAttr is the attribute checked when Config.Hash is set.
const hashAttr = "user.cloudmount.sha256"

// Names are the files the operations use: a few at the root and a few in
// a directory, so that renames and copies meet existing files.
var Names = []string{"a", "b.txt", "c", "d/e", "d/f.bin", "d/g"}

// SeedFromEnv returns DIFFTEST_SEED if it is set, else a seed from the
// clock.
func SeedFromEnv() uint64 {
	if s := os.Getenv("DIFFTEST_SEED"); s != "" {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
	}
	return uint64(time.Now().UnixNano())
}

// Scale returns n times DIFFTEST_SCALE (1 when unset): make soak runs the
// same tests with many more operations.
func Scale(n int) int {
	if v, err := strconv.Atoi(os.Getenv("DIFFTEST_SCALE")); err == nil && v > 1 {
		return n * v
	}
	return n
}

// Run applies cfg.Ops random operations to mount and to local (an empty
// directory on a local filesystem) and fails t at the first difference.
func Run(t testing.TB, mount, local string, cfg Config) {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = SeedFromEnv()
	}
	cfg.Ops = Scale(cfg.Ops)
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 200
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 256 << 10
	}
	r := &runner{t: t, cfg: cfg, mount: mount, local: local}
	t.Logf("difftest: seed %d, %d operations (replay: DIFFTEST_SEED=%d)", cfg.Seed, cfg.Ops, cfg.Seed)
	for _, root := range []string{mount, local} {
		if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
			t.Fatalf("difftest: %v", err)
		}
	}
	g := &gen{rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), names: Names, maxSize: cfg.MaxSize}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(local, name))
		if err != nil {
			return -1
		}
		return fi.Size()
	}
	counts := map[string]int{}
	for i := 1; i <= cfg.Ops; i++ {
		o := g.next(size)
		counts[o.kind]++
		r.step(i, o)
		if i%cfg.CheckEvery == 0 || i == cfg.Ops {
			r.checkpoint(i)
		}
	}
	t.Logf("difftest: %d operations agree (%v)", cfg.Ops, counts)
}

// runner holds a run's state.
type runner struct {
	t            testing.TB
	cfg          Config
	mount, local string
	recent       []string // the last operations, for the failure message
}

// fail stops the run with the seed and the operations that led there.
func (r *runner) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("difftest (seed %d, replay with DIFFTEST_SEED=%d): %s\nlast operations:\n  %s",
		r.cfg.Seed, r.cfg.Seed, fmt.Sprintf(format, args...), strings.Join(r.recent, "\n  "))
}

// step applies o to both trees and compares the outcome and the files it
// touched.
func (r *runner) step(i int, o op) {
	r.t.Helper()
	r.recent = append(r.recent, fmt.Sprintf("#%d %v", i, o))
	if len(r.recent) > 25 {
		r.recent = r.recent[1:]
	}
	wantOut, wantErr := o.apply(r.local)
	gotOut, gotErr := o.apply(r.mount)
	if errnoOf(gotErr) != errnoOf(wantErr) {
		r.fail("#%d %v: mount says %v, local directory %v", i, o, gotErr, wantErr)
	}
	if !bytes.Equal(gotOut, wantOut) {
		r.fail("#%d %v: mount read %d bytes (sha %x…), local directory %d (sha %x…)", i, o,
			len(gotOut), shortSum(gotOut), len(wantOut), shortSum(wantOut))
	}
	for _, name := range []string{o.path, o.to} {
		if name != "" {
			r.compareFile(i, name)
		}
	}
}

// compareFile compares one file's existence and bytes on both trees.
func (r *runner) compareFile(i int, name string) {
	r.t.Helper()
	want, werr := os.ReadFile(filepath.Join(r.local, name))
	got, gerr := os.ReadFile(filepath.Join(r.mount, name))
	if errnoOf(gerr) != errnoOf(werr) {
		r.fail("after #%d, reading %s: mount says %v, local directory %v", i, name, gerr, werr)
	}
	if !bytes.Equal(got, want) {
		r.fail("after #%d, %s differs: mount has %d bytes (sha %x…, first difference at %d), local directory %d (sha %x…)",
			i, name, len(got), shortSum(got), firstDiff(got, want), len(want), shortSum(want))
	}
}

// checkpoint compares the whole trees, then, after a sync, the server's
// files and the hash attribute with the local directory.
func (r *runner) checkpoint(i int) {
	r.t.Helper()
	want := r.tree(r.local)
	got := r.tree(r.mount)
	r.sameTrees(i, "mount", got, want)
	if r.cfg.Hash {
		for name, b := range want {
			if h := r.hashAttr(filepath.Join(r.mount, name)); h != fullSum(b) {
				r.fail("checkpoint after #%d: %s has %s %s, the hash of its bytes is %s", i, name, hashAttr, h, fullSum(b))
			}
		}
	}
	if r.cfg.Sync == nil {
		return
	}
	if err := r.cfg.Sync(); err != nil {
		r.fail("checkpoint after #%d: sync: %v", i, err)
	}
	if r.cfg.ServerFiles != nil {
		srv, err := r.cfg.ServerFiles()
		if err != nil {
			r.fail("checkpoint after #%d: reading the server's files: %v", i, err)
		}
		r.sameTrees(i, "server", srv, want)
	}
	// What a sync reported as uploaded is also what the mount shows.
	r.sameTrees(i, "mount after sync", r.tree(r.mount), want)
}

// tree reads every regular file below root.
func (r *runner) tree(root string) map[string][]byte {
	r.t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		r.fail("reading %s: %v", root, err)
	}
	return files
}

// sameTrees compares two sets of files by name and bytes.
func (r *runner) sameTrees(i int, what string, got, want map[string][]byte) {
	r.t.Helper()
	var names []string
	for name := range got {
		names = append(names, name)
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		g, gok := got[name]
		w, wok := want[name]
		switch {
		case !wok:
			r.fail("checkpoint after #%d: the %s has %s (%d bytes), the local directory does not", i, what, name, len(g))
		case !gok:
			r.fail("checkpoint after #%d: the %s lacks %s (%d bytes in the local directory)", i, what, name, len(w))
		case !bytes.Equal(g, w):
			r.fail("checkpoint after #%d: %s differs on the %s: %d bytes (sha %x…, first difference at %d), local directory %d (sha %x…)",
				i, name, what, len(g), shortSum(g), firstDiff(g, w), len(w), shortSum(w))
		}
	}
}

// hashAttr reads the hash attribute of p.
func (r *runner) hashAttr(p string) string {
	r.t.Helper()
	buf := make([]byte, 128)
	k, err := syscall.Getxattr(p, hashAttr, buf)
	if err != nil {
		r.fail("getxattr %s %s: %v", hashAttr, p, err)
	}
	return string(buf[:k])
}

// Tree reads every regular file below dir, for Config.ServerFiles, leaving
// out names for which skip is true.
func Tree(dir string, skip func(rel string) bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if skip != nil && rel != "." && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return files, err
}

func fullSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func shortSum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:4]
}

// firstDiff is the first offset at which a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
