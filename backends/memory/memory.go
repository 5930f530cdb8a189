// Package memory is an in-memory Backend for unit tests of the layers above
// the backends. It honours the whole interface, including conditional puts and
// stored metadata, and can be told to fail.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Backend is a tree of files and directories held in memory.
type Backend struct {
	mu    sync.Mutex // protects the fields below
	nodes map[string]*node
	next  int
	fail  error
	calls map[string]int
}

type node struct {
	dir     bool
	data    []byte
	modTime time.Time
	version string
	meta    backends.Meta
}

var (
	_ backends.Backend     = (*Backend)(nil)
	_ backends.MetaSetter  = (*Backend)(nil)
	_ backends.QuotaReader = (*Backend)(nil)
)

// New returns an empty tree with just the root directory.
func New() *Backend {
	return &Backend{
		nodes: map[string]*node{"": {dir: true, modTime: time.Now()}},
		calls: map[string]int{},
	}
}

// FailWith makes every later call fail with err (nil clears it), to simulate
// an unreachable server.
func (b *Backend) FailWith(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

// Calls reports how often the named method (e.g. "Put") was called.
func (b *Backend) Calls(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

// Content returns the stored bytes of a file, for assertions.
func (b *Backend) Content(p string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.nodes[clean(p)]
	if !ok || n.dir {
		return nil, false
	}
	return append([]byte(nil), n.data...), true
}

func clean(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	return p
}

func (b *Backend) begin(method string) error {
	b.calls[method]++
	return b.fail
}

func (b *Backend) entry(p string, n *node) backends.Entry {
	e := backends.Entry{Name: path.Base(p), IsDir: n.dir, Size: int64(len(n.data)), ModTime: n.modTime, Version: n.version, Meta: n.meta}
	if p == "" {
		e.Name = ""
	}
	if n.meta.MTime != nil {
		e.ModTime = *n.meta.MTime
	}
	return e
}

func (b *Backend) parentDir(p string) error {
	parent, ok := b.nodes[clean(path.Dir(p))]
	if !ok {
		return backends.ErrNotFound
	}
	if !parent.dir {
		return backends.ErrNotDir
	}
	return nil
}

// Stat implements backends.Backend.
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Stat"); err != nil {
		return backends.Entry{}, err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	if !ok {
		return backends.Entry{}, fmt.Errorf("stat %s: %w", p, backends.ErrNotFound)
	}
	return b.entry(p, n), nil
}

// List implements backends.Backend.
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("List"); err != nil {
		return nil, err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	if !ok {
		return nil, fmt.Errorf("list %s: %w", p, backends.ErrNotFound)
	}
	if !n.dir {
		return nil, fmt.Errorf("list %s: %w", p, backends.ErrNotDir)
	}
	var out []backends.Entry
	for q, c := range b.nodes {
		if q != "" && clean(path.Dir(q)) == p {
			out = append(out, b.entry(q, c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Read implements backends.Backend.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Read"); err != nil {
		return nil, err
	}
	n, ok := b.nodes[clean(p)]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", p, backends.ErrNotFound)
	}
	if n.dir {
		return nil, fmt.Errorf("read %s: %w", p, backends.ErrIsDir)
	}
	data := n.data
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	data = data[off:]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(bytes.NewReader(append([]byte(nil), data...))), nil
}

// Put implements backends.Backend.
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Put"); err != nil {
		return backends.Entry{}, err
	}
	p = clean(p)
	if err := b.parentDir(p); err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, err)
	}
	old, exists := b.nodes[p]
	switch {
	case exists && old.dir:
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, backends.ErrIsDir)
	case exists && opts.IfNoneMatch:
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, backends.ErrPrecondition)
	case opts.IfMatch != "" && (!exists || old.version != opts.IfMatch):
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, backends.ErrPrecondition)
	}
	b.next++
	n := &node{data: data, modTime: time.Now(), version: strconv.Itoa(b.next), meta: opts.Meta}
	b.nodes[p] = n
	return b.entry(p, n), nil
}

// Mkdir implements backends.Backend.
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Mkdir"); err != nil {
		return err
	}
	p = clean(p)
	if _, ok := b.nodes[p]; ok {
		return fmt.Errorf("mkdir %s: %w", p, backends.ErrExist)
	}
	if err := b.parentDir(p); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	b.nodes[p] = &node{dir: true, modTime: time.Now()}
	return nil
}

// Remove implements backends.Backend.
func (b *Backend) Remove(ctx context.Context, p string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Remove"); err != nil {
		return err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	if !ok {
		return fmt.Errorf("remove %s: %w", p, backends.ErrNotFound)
	}
	if n.dir {
		for q := range b.nodes {
			if strings.HasPrefix(q, p+"/") {
				return fmt.Errorf("remove %s: %w", p, backends.ErrNotEmpty)
			}
		}
	}
	delete(b.nodes, p)
	return nil
}

// Rename implements backends.Backend.
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("Rename"); err != nil {
		return err
	}
	from, to = clean(from), clean(to)
	src, ok := b.nodes[from]
	if !ok {
		return fmt.Errorf("rename %s: %w", from, backends.ErrNotFound)
	}
	if err := b.parentDir(to); err != nil {
		return fmt.Errorf("rename to %s: %w", to, err)
	}
	if dst, ok := b.nodes[to]; ok {
		if !overwrite {
			return fmt.Errorf("rename to %s: %w", to, backends.ErrExist)
		}
		if dst.dir != src.dir {
			if dst.dir {
				return fmt.Errorf("rename to %s: %w", to, backends.ErrIsDir)
			}
			return fmt.Errorf("rename to %s: %w", to, backends.ErrNotDir)
		}
		for q := range b.nodes {
			if strings.HasPrefix(q, to+"/") {
				return fmt.Errorf("rename to %s: %w", to, backends.ErrNotEmpty)
			}
		}
	}
	moved := map[string]*node{}
	for q, n := range b.nodes {
		if q == from || strings.HasPrefix(q, from+"/") {
			moved[to+q[len(from):]] = n
			delete(b.nodes, q)
		}
	}
	for q, n := range moved {
		b.nodes[q] = n
	}
	return nil
}

// SetMeta implements backends.MetaSetter.
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin("SetMeta"); err != nil {
		return backends.Entry{}, err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	if !ok {
		return backends.Entry{}, fmt.Errorf("setmeta %s: %w", p, backends.ErrNotFound)
	}
	if ifVersion != "" && n.version != ifVersion {
		return backends.Entry{}, fmt.Errorf("setmeta %s: %w", p, backends.ErrPrecondition)
	}
	n.meta.Merge(m)
	return b.entry(p, n), nil
}

// Quota implements backends.QuotaReader.
func (b *Backend) Quota(ctx context.Context) (backends.Quota, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var used int64
	for _, n := range b.nodes {
		used += int64(len(n.data))
	}
	return backends.Quota{Used: used, Available: 1 << 30}, nil
}

// Capabilities implements backends.Backend.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	all := backends.MetaField{Stored: true, OnPut: true}
	return backends.Capabilities{MTime: all, Mode: all, Owner: all, Hash: all, Type: all,
		ConditionalPut: true, AtomicPut: true, AtomicRename: true, Quota: true}, nil
}

// Close implements backends.Backend.
func (b *Backend) Close() error { return nil }

// String implements backends.Backend.
func (b *Backend) String() string { return "memory" }
