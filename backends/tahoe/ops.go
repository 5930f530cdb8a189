package tahoe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/cloudmount/cloudmount/backends"
)

// lookup is a directory and one of its children as a listing just showed
// them.
type lookup struct {
	dir   listing // the parent: its own caps (self.rw is "" when read-only) and child count
	child *child  // nil: no child of that name
}

// lookup lists the parent of p (clean, not the root) and finds p's name in
// it. Tahoe stores names in NFC and looks them up in NFC, so a name given
// in another form finds the child of its NFC form.
func (b *Backend) lookup(ctx context.Context, op, p string) (lookup, error) {
	dir, name := splitPath(p)
	want := norm.NFC.String(name)
	l, err := b.listPath(ctx, op, dir, func(n string) bool {
		return n == name || n == want || norm.NFC.String(n) == want
	})
	if err != nil {
		return lookup{}, err
	}
	lk := lookup{dir: l}
	for i := range l.children {
		c := &l.children[i]
		if c.name == name || lk.child == nil {
			lk.child = c
		}
	}
	return lk, nil
}

// writable is the write cap of the parent of lk, or an error when the
// parent is read-only (a read-only cap linked into a writable tree).
func (lk *lookup) writable(op, p string) (string, error) {
	if lk.dir.self.rw == "" {
		dir, _ := splitPath(p)
		return "", opError(op, p, backends.ErrPermission, "the directory %s is read-only (linked with a read-only capability)", display(dir))
	}
	return lk.dir.self.rw, nil
}

// checkName refuses a name that Tahoe cannot store as given.
func checkName(op, p, name string) error {
	if problem := backends.NameProblem(name); problem != "" {
		return opError(op, p, backends.ErrUnsupported, "%s", problem)
	}
	if !utf8.ValidString(name) {
		return opError(op, p, backends.ErrUnsupported, "Tahoe names are Unicode text, and this one is not valid UTF-8")
	}
	return nil
}

// Stat returns the entry at p: the root from its own listing (with the
// time the backend was opened as its ModTime: it has no edge, so no time
// of its own), anything else from its parent's, which holds the edge
// metadata.
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	p = cleanPath(p)
	if err := ctx.Err(); err != nil {
		return backends.Entry{}, fmt.Errorf("stat %s: %w", display(p), err)
	}
	if p == "" {
		if _, err := b.listDir(ctx, "stat", "", func(string) bool { return false }); err != nil {
			return backends.Entry{}, err
		}
		return backends.Entry{IsDir: true, ModTime: b.started}, nil
	}
	lk, err := b.lookup(ctx, "stat", p)
	if err != nil {
		return backends.Entry{}, err
	}
	if lk.child == nil {
		return backends.Entry{}, opError("stat", p, backends.ErrNotFound, "")
	}
	if err := b.fillSize(ctx, "stat", p, &lk.child.node); err != nil {
		return backends.Entry{}, err
	}
	_, name := splitPath(p)
	b.caps.remember(&lk.child.node)
	e, err := entryOf(name, &lk.child.node)
	if errors.Is(err, errUnknownNode) {
		return backends.Entry{}, opError("stat", p, backends.ErrUnsupported, "%v", errUnknownNode)
	}
	if err != nil {
		return backends.Entry{}, fmt.Errorf("stat %s: %w", display(p), err)
	}
	return e, nil
}

// List returns the children of the directory at p. Names that cannot be
// directory entries (a slash, too long) and nodes of unknown kinds are
// left out, with a warning.
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	p = cleanPath(p)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", display(p), err)
	}
	l, err := b.listDir(ctx, "list", p, nil)
	if err != nil {
		return nil, err
	}
	var unsized []*node
	seen := make(map[string]bool, len(l.children))
	kept := l.children[:0]
	for _, c := range l.children {
		if problem := backends.NameProblem(c.name); problem != "" {
			b.log.Warn("tahoe: skipping a child whose name cannot be a directory entry",
				slog.String("dir", display(p)), backends.NameAttr("name", c.name), "problem", problem)
			continue
		}
		if c.kind != "dirnode" && c.kind != "filenode" {
			b.log.Warn("tahoe: skipping a child of a kind this node does not know",
				slog.String("dir", display(p)), backends.NameAttr("name", c.name))
			continue
		}
		if seen[c.name] {
			continue
		}
		seen[c.name] = true
		kept = append(kept, c)
	}
	for i := range kept {
		if kept[i].kind == "filenode" && kept[i].size < 0 {
			unsized = append(unsized, &kept[i].node)
		}
	}
	if err := b.fillSizes(ctx, "list", p, unsized); err != nil {
		return nil, err
	}
	entries := make([]backends.Entry, 0, len(kept))
	for i := range kept {
		e, err := entryOf(kept[i].name, &kept[i].node)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", display(p), err)
		}
		b.caps.remember(&kept[i].node)
		entries = append(entries, e)
	}
	return entries, nil
}

// fillSize asks for the size of a mutable file, which a listing gives only
// when the node happens to know it: GET ?t=json of the file's cap updates
// its servermap first.
func (b *Backend) fillSize(ctx context.Context, op, p string, n *node) error {
	if n.kind != "filenode" || n.size >= 0 {
		return nil
	}
	cap := n.ro
	if cap == "" {
		cap = n.rw
	}
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	r := &request{method: http.MethodGet, op: op, cap: cap, shown: p, query: url.Values{"t": {"json"}}}
	resp, err := b.do(ctx, r)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return replyError(r, resp)
	}
	defer drain(resp)
	l, err := decodeListing(resp.Body, maxSmallReply, 0, func(string) bool { return false })
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, display(p), err)
	}
	if l.self.size < 0 {
		return opError(op, p, backends.ErrProtocol, "the node gives no size for the mutable file")
	}
	n.size = l.self.size
	return nil
}

// fillSizes is fillSize for many files, a few at a time.
func (b *Backend) fillSizes(ctx context.Context, op, p string, ns []*node) error {
	const parallel = 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, parallel)
	)
	for _, n := range ns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := b.fillSize(ctx, op, p, n); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// Mkdir creates one directory: POST ?t=mkdir&replace=false to its parent's
// write cap.
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	p = cleanPath(p)
	if err := b.beginChange(ctx, "mkdir", p); err != nil {
		return err
	}
	if p == "" {
		return opError("mkdir", p, backends.ErrExist, "")
	}
	_, name := splitPath(p)
	if err := checkName("mkdir", p, name); err != nil {
		return err
	}
	lk, err := b.lookup(ctx, "mkdir", p)
	if err != nil {
		return err
	}
	if lk.child != nil {
		return opError("mkdir", p, backends.ErrExist, "")
	}
	dirRW, err := lk.writable("mkdir", p)
	if err != nil {
		return err
	}
	r := &request{method: http.MethodPost, op: "mkdir", cap: dirRW, shown: p,
		query: url.Values{"t": {"mkdir"}, "name": {name}, "replace": {"false"}}}
	return b.change(ctx, r, func(ctx context.Context) bool {
		lk, err := b.lookup(ctx, "mkdir", p)
		return err == nil && lk.child != nil && lk.child.kind == "dirnode"
	})
}

// Remove unlinks a file or an empty directory (POST ?t=unlink to the
// parent's write cap). Tahoe unlinks a directory with whatever it holds, so
// a directory is listed first and refused with ErrNotEmpty if it has
// children; a child added by another client between that listing and the
// unlink goes with it.
func (b *Backend) Remove(ctx context.Context, p string) error {
	p = cleanPath(p)
	if err := b.beginChange(ctx, "remove", p); err != nil {
		return err
	}
	if p == "" {
		return opError("remove", p, backends.ErrPermission, "refusing to remove the root")
	}
	lk, err := b.lookup(ctx, "remove", p)
	if err != nil {
		return err
	}
	if lk.child == nil {
		return opError("remove", p, backends.ErrNotFound, "")
	}
	dirRW, err := lk.writable("remove", p)
	if err != nil {
		return err
	}
	if lk.child.kind == "dirnode" {
		if empty, err := b.isEmpty(ctx, "remove", p, &lk.child.node); err != nil {
			return err
		} else if !empty {
			return opError("remove", p, backends.ErrNotEmpty, "")
		}
	}
	r := &request{method: http.MethodPost, op: "remove", cap: dirRW, shown: p,
		query: url.Values{"t": {"unlink"}, "name": {lk.child.name}}}
	defer b.dirs.forget(p)
	return b.change(ctx, r, func(ctx context.Context) bool {
		lk, err := b.lookup(ctx, "remove", p)
		return err == nil && lk.child == nil
	})
}

// isEmpty reports whether the directory n (listed as p) has no children.
func (b *Backend) isEmpty(ctx context.Context, op, p string, n *node) (bool, error) {
	cap := n.rw
	if cap == "" {
		cap = n.ro
	}
	l, err := b.listCap(ctx, op, p, cap, "", func(string) bool { return false })
	if err != nil {
		return false, err
	}
	return l.count == 0, nil
}

// beginChange refuses a change on a read-only mount (decided from the
// cap's kind, without a request) or with a context that has ended.
func (b *Backend) beginChange(ctx context.Context, op, p string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, display(p), err)
	}
	if b.readOnly {
		return opError(op, p, backends.ErrReadOnly, "the mount's capability %s is read-only", b.redacted)
	}
	return nil
}
