package webdav

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// Stat returns the entry at p (PROPFIND Depth 0).
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	p = cleanPath(p)
	res, err := b.propfind(ctx, p, p == "", "0", propfindBody)
	if err != nil {
		return backends.Entry{}, err
	}
	self, ok := b.pickSelf(res, p)
	if !ok {
		return backends.Entry{}, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotFound)
	}
	return self.entry(path.Base("/" + p)), nil
}

// List returns the children of the directory at p (PROPFIND Depth 1).
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	p = cleanPath(p)
	res, err := b.propfind(ctx, p, true, "1", propfindBody)
	if err != nil {
		switch httpCode(err) {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusConflict:
			// A file addressed as a collection ("f/") gets one of these,
			// depending on the server: tell ENOTDIR from ENOENT.
			if st, serr := b.Stat(ctx, p); serr == nil && !st.IsDir {
				return nil, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotDir)
			}
		}
		return nil, err
	}
	self, ok := b.pickSelf(res, p)
	if ok && !self.isDir {
		return nil, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotDir)
	}
	entries := make([]backends.Entry, 0, len(res))
	seen := make(map[string]bool, len(res))
	for i := range res {
		r := &res[i]
		if !r.found || (ok && r.path == self.path) {
			continue
		}
		name := lastSegment(r.path)
		if name == "" || name == "." || name == ".." || seen[name] {
			continue
		}
		seen[name] = true
		entries = append(entries, r.entry(name))
	}
	return entries, nil
}

// propfind runs a PROPFIND on p and parses the multistatus reply.
func (b *Backend) propfind(ctx context.Context, p string, dir bool, depth, body string) ([]resource, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "PROPFIND", path: p, dir: dir, depth: depth, body: body})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		if resp.StatusCode == http.StatusMovedPermanently || resp.StatusCode == http.StatusPermanentRedirect {
			// a file addressed as a collection, on some servers
			return nil, statusErrorAs("PROPFIND", p, resp, backends.ErrNotDir)
		}
		return nil, statusError("PROPFIND", p, resp)
	}
	res, err := parseMultistatus(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, b.netError("PROPFIND", p, ctx.Err())
		}
		return nil, fmt.Errorf("PROPFIND %s: %w", display(p), err)
	}
	return res, nil
}

// pickSelf finds the response describing p itself among res: the one whose
// href is p's URL path, else (a proxy that rewrites paths) the shortest one.
func (b *Backend) pickSelf(res []resource, p string) (resource, bool) {
	want := b.urlPath(p)
	var best *resource
	for i := range res {
		r := &res[i]
		if !r.found {
			continue
		}
		if trimSlash(r.path) == want {
			return *r, true
		}
		if best == nil || len(r.path) < len(best.path) {
			best = r
		}
	}
	if best == nil {
		return resource{}, false
	}
	prefix := strings.TrimSuffix(best.path, "/") + "/"
	for i := range res {
		if r := &res[i]; r.found && r != best && !strings.HasPrefix(r.path, prefix) {
			return resource{}, false
		}
	}
	return *best, true
}

// entry converts a resource to an Entry named name.
func (r *resource) entry(name string) backends.Entry {
	r.contentBound()
	if !r.isDir && r.meta.SHA256 == "" {
		// A cm:sha256 valid for this version wins; the server's own
		// checksum fills in where there is none.
		r.meta.SHA256 = r.ocSHA256
	}
	e := backends.Entry{
		Name:    name,
		IsDir:   r.isDir,
		ModTime: r.modified,
		Version: r.etag,
		Meta:    r.meta,
	}
	if !r.isDir && r.size > 0 {
		e.Size = r.size
	}
	if r.meta.MTime != nil {
		e.ModTime = *r.meta.MTime
	}
	if e.Name == "/" {
		e.Name = ""
	}
	return e
}

func trimSlash(p string) string {
	if len(p) > 1 {
		return strings.TrimSuffix(p, "/")
	}
	return p
}

// lastSegment is the last element of a decoded URL path ("/a/b/" → "b").
func lastSegment(p string) string {
	p = strings.TrimSuffix(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
