// Package memory is an in-memory Backend for unit tests of the layers above
// the backends. It honours the whole contract (backendtest passes),
// including conditional puts, stored metadata, symbolic and hard links, and
// can be told to fail. NewWith makes it behave like a given kind of server:
// it keeps only the metadata its capabilities call stored, to their
// precision, and refuses changes when read-only.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Backend is a tree of files and directories held in memory.
type Backend struct {
	caps backends.Capabilities // fixed at creation

	mu    sync.Mutex // protects the fields below
	nodes map[string]*node
	next  int
	fail  error
	calls map[string]int
}

// node is one file, directory or symbolic link. Hard links are paths that
// share a node.
type node struct {
	dir     bool
	data    []byte
	modTime time.Time
	version string
	link    string // target of a native symbolic link
	meta    backends.Meta
}

var (
	_ backends.Backend     = (*Backend)(nil)
	_ backends.MetaSetter  = (*Backend)(nil)
	_ backends.QuotaReader = (*Backend)(nil)
	_ backends.SizedReader = (*Backend)(nil)
	_ backends.Symlinker   = (*Backend)(nil)
	_ backends.Linker      = (*Backend)(nil)
	_ backends.Hasher      = (*Backend)(nil)
)

// DefaultCapabilities is what New's backend can do: keep every kind of
// metadata exactly and with the upload, conditional and atomic puts, atomic
// renames, quota. It has no native links.
func DefaultCapabilities() backends.Capabilities {
	all := backends.MetaField{Stored: true, OnPut: true}
	return backends.Capabilities{
		MTime: all, Mode: all, Owner: all, Hash: all, Type: all,
		ConditionalPut: true, AtomicPut: true, AtomicRename: true, Quota: true,
	}
}

// New returns an empty tree with just the root directory and
// DefaultCapabilities.
func New() *Backend { return NewWith(DefaultCapabilities()) }

// NewWith returns an empty tree that behaves as caps say: it keeps only the
// metadata caps call stored (an mtime truncated to its precision), makes
// symbolic and hard links only when caps has them, reports quota only with
// caps.Quota and refuses every change when caps.ReadOnly. Its puts are
// always conditional and atomic, whatever caps claims.
func NewWith(caps backends.Capabilities) *Backend {
	caps.Notes = append([]string(nil), caps.Notes...)
	return &Backend{
		caps:  caps,
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

// Calls reports how often the named method (e.g. "Put") was called;
// ReadSized counts as "Read".
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
	return strings.Trim(path.Clean("/"+p), "/")
}

// begin counts a call of method and says whether it may go on: not when
// ctx has ended or the backend was told to fail. b.mu is held.
func (b *Backend) begin(ctx context.Context, method string) error {
	b.calls[method]++
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", strings.ToLower(method), err)
	}
	return b.fail
}

// beginWrite is begin for a call that changes the tree.
func (b *Backend) beginWrite(ctx context.Context, method, p string) error {
	if err := b.begin(ctx, method); err != nil {
		return err
	}
	if b.caps.ReadOnly {
		return fmt.Errorf("%s %s: %w", strings.ToLower(method), p, backends.ErrReadOnly)
	}
	return nil
}

func (b *Backend) entry(p string, n *node) backends.Entry {
	e := backends.Entry{
		Name: path.Base(p), IsDir: n.dir, Size: int64(len(n.data)), ModTime: n.modTime,
		Version: n.version, LinkTarget: n.link, Meta: copyMeta(n.meta),
	}
	if p == "" {
		e.Name = ""
	}
	if n.link != "" {
		e.Size = int64(len(n.link))
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

// newVersion names a new content. b.mu is held.
func (b *Backend) newVersion() string {
	b.next++
	return fmt.Sprintf("m%d", b.next)
}

// Stat implements backends.Backend.
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, "Stat"); err != nil {
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
	if err := b.begin(ctx, "List"); err != nil {
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

// Read implements backends.Backend. The reader fails once ctx ends.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	return b.read(ctx, p, off, length, -1)
}

// ReadSized implements backends.SizedReader: a file of another size than
// size fails with backends.ErrProtocol. Calls counts it as a "Read".
func (b *Backend) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	return b.read(ctx, p, off, length, size)
}

func (b *Backend) read(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, "Read"); err != nil {
		return nil, err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	switch {
	case !ok:
		return nil, fmt.Errorf("read %s: %w", p, backends.ErrNotFound)
	case n.dir:
		return nil, fmt.Errorf("read %s: %w", p, backends.ErrIsDir)
	case off < 0:
		return nil, fmt.Errorf("read %s: negative offset %d", p, off)
	case size >= 0 && size != int64(len(n.data)):
		return nil, fmt.Errorf("read %s: %w: the file has %d bytes, not %d", p, backends.ErrProtocol, len(n.data), size)
	}
	data := n.data[min(off, int64(len(n.data))):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(ctxReader{ctx: ctx, r: bytes.NewReader(data)}), nil
}

// ctxReader is r that fails once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Capabilities implements backends.Backend: the capabilities it was made
// with.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return backends.Capabilities{}, fmt.Errorf("capabilities: %w", err)
	}
	caps := b.caps
	caps.Notes = append([]string(nil), caps.Notes...)
	return caps, nil
}

// Close implements backends.Backend.
func (b *Backend) Close() error { return nil }

// String implements backends.Backend.
func (b *Backend) String() string { return "memory" }
