package webdav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// Stat returns the entry at p (PROPFIND Depth 0).
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	p = cleanPath(p)
	res, err := b.propfind(ctx, p, p == "", "0", propfindBody)
	if err != nil {
		return backends.Entry{}, b.statRefused(ctx, p, err)
	}
	self, ok := b.pickSelf(res, p)
	if !ok {
		return backends.Entry{}, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotFound)
	}
	return b.entry(&self, path.Base("/"+p)), nil
}

// List returns the children of the directory at p (PROPFIND Depth 1). The
// reply is read as it arrives and kept only as entries (see listed), so
// that a listing costs memory for the entries it keeps, within the bounds
// of msLimits.
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	p = cleanPath(p)
	// Kept in chunks while the reply is read: a slice that doubles would
	// hold one and a half times the listing at each growth.
	var chunks [][]listed
	n := 0
	err := b.propfindWalk(ctx, p, true, "1", propfindBody, func(r *resource) error {
		if !r.found {
			return nil
		}
		l := listed{path: r.path, problem: b.hrefProblem(r.href), entry: b.entry(r, "")}
		if l.problem != "" {
			l.path = r.href // what the warning shows
		}
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == cap(chunks[len(chunks)-1]) {
			chunks = append(chunks, make([]listed, 0, listChunk))
		}
		chunks[len(chunks)-1] = append(chunks[len(chunks)-1], l)
		n++
		return nil
	})
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
	all := make([]listed, 0, n)
	for i, c := range chunks {
		all = append(all, c...)
		chunks[i] = nil
	}
	self := b.pickSelfListed(all, p)
	if self >= 0 && !all[self].entry.IsDir {
		return nil, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotDir)
	}
	parent := b.urlPath(p)
	if self >= 0 {
		parent = trimSlash(all[self].path)
	}
	entries := make([]backends.Entry, 0, len(all))
	seen := make(map[string]bool, len(all))
	skipped := skipLog{b: b, dir: p}
	defer skipped.done()
	for i := range all {
		l := &all[i]
		if i == self || (self >= 0 && l.path == all[self].path) {
			continue
		}
		reason := l.problem
		name := ""
		if reason == "" {
			name, reason = childOf(l.path, parent)
		}
		if reason != "" {
			skipped.skip(l.path, reason)
			continue
		}
		if seen[name] || strings.HasPrefix(name, UploadPrefix) {
			// an upload in progress (putViaTemp) is not a file yet
			continue
		}
		seen[name] = true
		l.entry.Name = name
		entries = append(entries, l.entry)
	}
	return entries, nil
}

// listChunk is how many responses List keeps per chunk while it reads.
const listChunk = 1024

// listed is one response of a listing as List keeps it while the reply is
// read: the entry without its name, and what is needed to name it.
type listed struct {
	path    string // decoded URL path; the href as written where problem is set
	problem string // why the href can be no child whatever the parent
	entry   backends.Entry
}

// pickSelfListed is pickSelf for a listing: the index of the response
// describing p itself, or -1.
func (b *Backend) pickSelfListed(all []listed, p string) int {
	want := b.urlPath(p)
	best := -1
	for i := range all {
		if trimSlash(all[i].path) == want {
			return i
		}
		if best < 0 || len(all[i].path) < len(all[best].path) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	prefix := strings.TrimSuffix(all[best].path, "/") + "/"
	for i := range all {
		if i != best && !strings.HasPrefix(all[i].path, prefix) {
			return -1
		}
	}
	return best
}

// propfind runs a PROPFIND on p and parses the multistatus reply.
func (b *Backend) propfind(ctx context.Context, p string, dir bool, depth, body string) ([]resource, error) {
	var res []resource
	err := b.propfindWalk(ctx, p, dir, depth, body, func(r *resource) error {
		res = append(res, *r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// propfindWalk runs a PROPFIND on p and calls fn with each response of the
// multistatus reply as it is decoded.
func (b *Backend) propfindWalk(ctx context.Context, p string, dir bool, depth, body string, fn func(*resource) error) error {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "PROPFIND", path: p, dir: dir, depth: depth, body: body})
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		if (resp.StatusCode == http.StatusMovedPermanently || resp.StatusCode == http.StatusPermanentRedirect) &&
			b.isFileRedirect(resp, p) {
			// a file addressed as a collection, on some servers
			return statusErrorAs("PROPFIND", p, resp, backends.ErrNotDir)
		}
		return statusError("PROPFIND", p, resp)
	}
	if err := walkMultistatus(resp.Body, b.limits, fn); err != nil {
		var le *LimitError
		if ctx.Err() != nil && !errors.As(err, &le) {
			return b.netError("PROPFIND", p, ctx.Err())
		}
		return fmt.Errorf("PROPFIND %s: %w", display(p), err)
	}
	return nil
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

// entry converts a resource to an Entry named name. Its Version is the
// ETag without the weakness indicator (see weakTags), or StatVersion for a
// server without ETags.
func (b *Backend) entry(r *resource, name string) backends.Entry {
	b.weak.note(r.etag)
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
		Version: r.version(),
		Meta:    r.meta,
		Deny:    denyOf(r.ocPerms, r.isDir),
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

// isFileRedirect reports whether resp redirects the collection URL of p to
// the same URL without its trailing slash (a file addressed as a
// collection).
func (b *Backend) isFileRedirect(resp *http.Response, p string) bool {
	loc, err := resp.Location()
	if err != nil {
		return false
	}
	want, err := url.Parse(b.urlFor(p, false))
	if err != nil {
		return false
	}
	return loc.Host == want.Host && strings.TrimSuffix(loc.Path, "/") == want.Path
}
