package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Symlink implements backends.Symlinker when the backend was made with
// Capabilities.Symlinks (else ErrUnsupported).
func (b *Backend) Symlink(ctx context.Context, target, p string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Symlink", p); err != nil {
		return backends.Entry{}, err
	}
	if !b.caps.Symlinks {
		return backends.Entry{}, fmt.Errorf("symlink %s: %w", p, backends.ErrUnsupported)
	}
	p = clean(p)
	if err := b.free(p); err != nil {
		return backends.Entry{}, fmt.Errorf("symlink %s: %w", p, err)
	}
	if target == "" {
		return backends.Entry{}, fmt.Errorf("symlink %s: %w: an empty target", p, backends.ErrNotFound)
	}
	n := &node{link: target, modTime: time.Now(), version: b.newVersion(), meta: backends.Meta{Type: "symlink"}}
	b.nodes[p] = n
	return b.entry(p, n), nil
}

// Link implements backends.Linker when the backend was made with
// Capabilities.HardLinks (else ErrUnsupported). The two paths share one
// node: its metadata and version. A Put replaces the node at its path and
// so breaks the link, as on a server that uploads to a temporary name.
func (b *Backend) Link(ctx context.Context, oldPath, newPath string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Link", newPath); err != nil {
		return backends.Entry{}, err
	}
	if !b.caps.HardLinks {
		return backends.Entry{}, fmt.Errorf("link %s: %w", newPath, backends.ErrUnsupported)
	}
	oldPath, newPath = clean(oldPath), clean(newPath)
	n, ok := b.nodes[oldPath]
	switch {
	case !ok:
		return backends.Entry{}, fmt.Errorf("link %s: %w", oldPath, backends.ErrNotFound)
	case n.dir:
		return backends.Entry{}, fmt.Errorf("link %s: %w: a directory", oldPath, backends.ErrPermission)
	}
	if err := b.free(newPath); err != nil {
		return backends.Entry{}, fmt.Errorf("link %s: %w", newPath, err)
	}
	b.nodes[newPath] = n
	return b.entry(newPath, n), nil
}

// free says why nothing can be created at p (nil if it can). b.mu is held.
func (b *Backend) free(p string) error {
	if _, ok := b.nodes[p]; ok {
		return backends.ErrExist
	}
	return b.parentDir(p)
}

// SHA256 implements backends.Hasher.
func (b *Backend) SHA256(ctx context.Context, p string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, "SHA256"); err != nil {
		return "", err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	switch {
	case !ok:
		return "", fmt.Errorf("sha256 %s: %w", p, backends.ErrNotFound)
	case n.dir:
		return "", fmt.Errorf("sha256 %s: %w", p, backends.ErrIsDir)
	}
	sum := sha256.Sum256(n.data)
	return hex.EncodeToString(sum[:]), nil
}

// Quota implements backends.QuotaReader when the backend was made with
// Capabilities.Quota (else ErrUnsupported): the bytes of its files, of 1 GiB.
func (b *Backend) Quota(ctx context.Context) (backends.Quota, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, "Quota"); err != nil {
		return backends.Quota{}, err
	}
	if !b.caps.Quota {
		return backends.Quota{}, fmt.Errorf("quota: %w", backends.ErrUnsupported)
	}
	const total = 1 << 30
	seen := map[*node]bool{}
	var used int64
	for _, n := range b.nodes {
		if !seen[n] {
			seen[n] = true
			used += int64(len(n.data))
		}
	}
	return backends.Quota{Used: used, Available: max(total-used, 0)}, nil
}
