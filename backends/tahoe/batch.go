package tahoe

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"golang.org/x/text/unicode/norm"

	"github.com/cloudmount/cloudmount/backends"
)

// Every change of a directory makes the node download, re-encrypt, sign
// and publish the whole dirnode, so linking many files into one directory
// one call each costs a dirnode per file. The links of files uploaded at
// the same time into the same directory are therefore grouped (group
// commit): while one set_children of a directory is under way, the links
// that arrive for it wait, and go together in the next call as soon as it
// is done. Nobody waits for a timer: a link into a quiet directory is sent
// at once, and a batch is exactly what piled up during the call before.
//
// A batch is one change with one replace= for all its children: links
// with another replace= go in a batch of their own. A batch that fails as
// a whole (a name taken, with replace=false; a directory in the way, with
// only-files) is sent again child by child, so that every caller learns
// its own result and no child is lost for another's clash.

const (
	// maxBatchChildren bounds the children of one set_children.
	maxBatchChildren = 500
	// maxBatchBytes bounds the JSON body of one set_children (a child
	// takes about 500 bytes: a cap and the metadata).
	maxBatchBytes = 1 << 20
)

// linkReq is one child waiting to be linked into a directory.
type linkReq struct {
	op, p   string // the caller's operation and path, for messages
	name    string
	n       *node
	meta    edgeMeta
	landed  func(context.Context) bool
	ctx     context.Context
	body    json.RawMessage // [kind, props] as set_children takes it
	done    chan struct{}   // closed once err is set
	err     error
	removed bool // under batcher.mu: the caller gave up before it was sent
}

// batchKey names the queue of one directory and one replace= mode. The
// directory is named by the hash of its write cap, so that no cap is a
// map key that could end up in a dump.
type batchKey struct {
	dir     [sha256.Size]byte
	replace string
}

// dirBatch is the links waiting for one directory (and mode).
type dirBatch struct {
	dirRW   string // the directory's write cap: a secret
	dirPath string // the directory, for messages
	pending []*linkReq
}

// batcher groups the links of concurrent uploads, per directory.
type batcher struct {
	mu   sync.Mutex // protects dirs
	dirs map[batchKey]*dirBatch
	// calls counts set_children calls sent for batches, children the
	// children they carried, and fallbacks the batches sent again child by
	// child (for tests and the debug log).
	calls, children, fallbacks int
}

// linkBatched links n at name in the directory dirRW (the directory of p)
// like link, grouped with the links of other uploads into the same
// directory that are waiting at the same time (see above). It returns the
// caller's own result: nil once the child is linked.
func (b *Backend) linkBatched(ctx context.Context, op, p, dirRW, name string, n *node, meta edgeMeta, replace string,
	landed func(context.Context) bool) error {
	props := map[string]any{"metadata": meta.marshal()}
	if n.ro != "" {
		props["ro_uri"] = n.ro
	}
	if n.rw != "" {
		props["rw_uri"] = n.rw
	}
	body, err := json.Marshal([]any{n.kind, props})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, display(p), err)
	}
	req := &linkReq{op: op, p: p, name: name, n: n, meta: meta, landed: landed, ctx: ctx, body: body,
		done: make(chan struct{})}
	key := batchKey{dir: sha256.Sum256([]byte(dirRW)), replace: replace}
	dir, _ := splitPath(p)

	bt := &b.batches
	bt.mu.Lock()
	if bt.dirs == nil {
		bt.dirs = map[batchKey]*dirBatch{}
	}
	d := bt.dirs[key]
	lead := d == nil
	if lead {
		d = &dirBatch{dirRW: dirRW, dirPath: dir}
		bt.dirs[key] = d
	}
	d.pending = append(d.pending, req)
	bt.mu.Unlock()
	if lead {
		go b.flushDir(key, d)
	}

	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		bt.mu.Lock()
		for i, r := range d.pending {
			if r == req {
				d.pending = append(d.pending[:i:i], d.pending[i+1:]...)
				req.removed = true
				break
			}
		}
		bt.mu.Unlock()
		if req.removed {
			return fmt.Errorf("%s %s: %w", op, display(p), ctx.Err())
		}
		// Already sent: the call may still link it; the caller's deadline
		// is what counts.
		return fmt.Errorf("%s %s: %w (the link was sent and may land)", op, display(p), ctx.Err())
	}
}

// flushDir sends the links waiting for one directory, a batch at a time,
// until none is left; then the directory's queue is dropped (under the
// lock, so that a link arriving later starts a new one).
func (b *Backend) flushDir(key batchKey, d *dirBatch) {
	bt := &b.batches
	for {
		bt.mu.Lock()
		batch, rest := takeBatch(d.pending)
		d.pending = rest
		if len(batch) == 0 {
			delete(bt.dirs, key)
			bt.mu.Unlock()
			return
		}
		bt.calls++
		bt.children += len(batch)
		bt.mu.Unlock()
		b.sendBatch(key.replace, d, batch)
	}
}

// takeBatch splits the waiting links into the next batch and the rest: in
// order, up to the bounds, and never two children whose names are one in
// NFC (Tahoe's form), which go in a later batch.
func takeBatch(pending []*linkReq) (batch, rest []*linkReq) {
	names := map[string]bool{}
	size := 0
	for i, r := range pending {
		nfc := norm.NFC.String(r.name)
		switch {
		case len(batch) >= maxBatchChildren, len(batch) > 0 && size+len(r.body)+len(r.name) > maxBatchBytes:
			return batch, append(rest, pending[i:]...)
		case names[nfc]:
			rest = append(rest, r)
			continue
		}
		names[nfc] = true
		size += len(r.body) + len(r.name)
		batch = append(batch, r)
	}
	return batch, rest
}

// sendBatch sends one batch and hands every member its result.
func (b *Backend) sendBatch(replace string, d *dirBatch, batch []*linkReq) {
	finish := func(r *linkReq, err error) {
		r.err = err
		close(r.done)
	}
	// The call ends when every member has given up (each caller's
	// deadline bounds it), and each attempt has the call timeout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu   sync.Mutex
		left = len(batch)
	)
	for _, r := range batch {
		stop := context.AfterFunc(r.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
		defer stop()
	}

	if len(batch) == 1 {
		r := batch[0]
		finish(r, b.link(ctx, r.op, r.p, d.dirRW, r.name, r.n, r.meta, replace, r.landed))
		return
	}
	children := make(map[string]json.RawMessage, len(batch))
	for _, r := range batch {
		children[r.name] = r.body
	}
	body, err := json.Marshal(children)
	if err == nil {
		req := &request{method: http.MethodPost, op: "link", cap: d.dirRW, shown: d.dirPath, body: body,
			ctype: "application/json",
			query: url.Values{"t": {"set_children"}, "replace": {replace}}}
		err = b.change(ctx, req, func(ctx context.Context) bool { return b.batchLanded(ctx, d, batch) })
		if err == nil {
			for _, r := range batch {
				finish(r, nil)
			}
			return
		}
	}
	if ctx.Err() != nil || errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrPermission) ||
		errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrNotDir) {
		// What failed is the node, the grid or the directory, not one
		// child: the same for all.
		for _, r := range batch {
			finish(r, fmt.Errorf("%s %s: linking it with %d other files: %w", r.op, display(r.p), len(batch)-1, err))
		}
		return
	}
	// A clash or a refusal of one child fails the whole change: find out
	// whose, one call per child.
	b.batches.mu.Lock()
	b.batches.fallbacks++
	b.batches.mu.Unlock()
	b.log.Debug("tahoe: a grouped link failed; linking its children one by one",
		"dir", display(d.dirPath), "children", len(batch), "err", err)
	for _, r := range batch {
		if r.ctx.Err() != nil {
			finish(r, fmt.Errorf("%s %s: %w", r.op, display(r.p), r.ctx.Err()))
			continue
		}
		finish(r, b.link(ctx, r.op, r.p, d.dirRW, r.name, r.n, r.meta, replace, r.landed))
	}
}

// batchLanded reports whether every child of a batch is linked as the
// batch would have linked it (a collision that went through all the same).
func (b *Backend) batchLanded(ctx context.Context, d *dirBatch, batch []*linkReq) bool {
	want := make(map[string]*linkReq, len(batch))
	for _, r := range batch {
		want[norm.NFC.String(r.name)] = r
	}
	l, err := b.listCap(ctx, "link", d.dirPath, d.dirRW, "", func(n string) bool { return want[norm.NFC.String(n)] != nil })
	if err != nil {
		return false
	}
	found := 0
	for _, c := range l.children {
		r := want[norm.NFC.String(c.name)]
		if r == nil || c.kind != r.n.kind || c.ro != r.n.ro || c.rw != r.n.rw {
			return false
		}
		found++
	}
	return found == len(batch)
}

// BatchStats are the figures of the grouped links: set_children calls
// sent, the children they carried, and batches sent again child by child.
type BatchStats struct {
	Calls, Children, Fallbacks int
}

// BatchStats reports the grouped links so far.
func (b *Backend) BatchStats() BatchStats {
	b.batches.mu.Lock()
	defer b.batches.mu.Unlock()
	return BatchStats{Calls: b.batches.calls, Children: b.batches.children, Fallbacks: b.batches.fallbacks}
}
