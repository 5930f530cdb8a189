package tahoe

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/cloudmount/cloudmount/backends"
)

// A request addressed by a path below the root makes the node download
// every directory on the way (it caches none), so a listing of a
// directory four levels down costs five directory downloads. The caps of
// directories listed lately are therefore remembered, by path, for
// dirCapTTL, and a listing of such a directory goes to its own cap. This
// backend forgets them where it changes the tree (Rename, Remove); a
// directory another client moves or removes is still addressed by its old
// cap for at most dirCapTTL (the single-writer rule of the package
// comment).

// dirCapTTL is how long the cap of a directory is used without walking
// its path again.
const dirCapTTL = 10 * time.Second

// dirCapMax bounds the directories remembered.
const dirCapMax = 4096

// dirCaps remembers the caps of directories by path.
type dirCaps struct {
	mu   sync.Mutex // protects m
	m    map[string]dirCap
	now  func() time.Time // time.Now; tests set it
	hits int              // listings sent to a remembered cap
}

// dirCap is a directory's cap (its write cap if writable, else its read
// cap) and when it was listed.
type dirCap struct {
	cap string
	at  time.Time
}

func (d *dirCaps) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// get returns the cap of the directory at p if it was listed less than
// dirCapTTL ago.
func (d *dirCaps) get(p string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.m[p]
	if !ok || d.clock().Sub(c.at) >= dirCapTTL {
		return "", false
	}
	d.hits++
	return c.cap, true
}

// put remembers the cap of the directory at p, listed now.
func (d *dirCaps) put(p string, n *node) {
	c := n.rw
	if c == "" {
		c = n.ro
	}
	if p == "" || c == "" || n.kind != "dirnode" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock()
	if d.m == nil {
		d.m = map[string]dirCap{}
	}
	if len(d.m) >= dirCapMax {
		for k, v := range d.m {
			if now.Sub(v.at) >= dirCapTTL {
				delete(d.m, k)
			}
		}
		if len(d.m) >= dirCapMax {
			clear(d.m)
		}
	}
	d.m[p] = dirCap{cap: c, at: now}
}

// forget drops p and everything below it, whatever Unicode form the
// names were given in (Tahoe finds a name in any form by its NFC).
func (d *dirCaps) forget(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == "" {
		clear(d.m)
		return
	}
	p = norm.NFC.String(p)
	for k := range d.m {
		if nk := norm.NFC.String(k); nk == p || strings.HasPrefix(nk, p+"/") {
			delete(d.m, k)
		}
	}
}

// listPath lists the directory at p (relative to the root): by its own
// cap when it was listed lately, else through the root's path, and then
// remembers its cap. A remembered cap that no longer lists as a directory
// is forgotten and the path walked.
func (b *Backend) listPath(ctx context.Context, op, p string, keep func(string) bool) (listing, error) {
	if c, ok := b.dirs.get(p); ok {
		l, err := b.listCap(ctx, op, p, c, "", keep)
		if err == nil || !(errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrNotDir) ||
			errors.Is(err, backends.ErrProtocol) || errors.Is(err, backends.ErrUnsupported)) {
			return l, err
		}
		b.dirs.forget(p)
	}
	l, err := b.listCap(ctx, op, p, b.root, p, keep)
	if err == nil {
		b.dirs.put(p, &l.self)
	}
	return l, err
}
