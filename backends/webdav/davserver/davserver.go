// Package davserver is the small embedded WebDAV server behind
// `cloudmount serve webdav DIR`: golang.org/x/net/webdav over a directory,
// plus what cloudmount relies on and x/net/webdav lacks:
//
//   - dead properties (PROPPATCH), kept in a user.* extended attribute of each
//     file, so they survive restarts and travel with MOVE;
//   - If-Match / If-None-Match on PUT, checked against the ETag the server
//     hands out, with PUTs to one path serialised;
//   - RFC 4331 quota-available-bytes / quota-used-bytes on the root, from
//     statfs of the directory;
//   - optional HTTP basic authentication;
//   - PROPFIND with Depth: infinity refused (403 propfind-finite-depth), as
//     Apache does by default.
//
// Options.Faults make it behave as less complete servers do (see Faults),
// for tests of clients.
//
// Where the directory's filesystem has no user xattrs, PROPPATCH answers 403
// for each property (clients then keep metadata elsewhere); there is no
// sidecar-file fallback.
package davserver

import (
	"context"
	"crypto/subtle"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/net/webdav"
)

// Options configure the server.
type Options struct {
	User     string       // "" = no authentication
	Password string       // checked in constant time; never logged
	Logger   *slog.Logger // nil = slog.Default()
	// Faults make the server behave as less complete servers do, for
	// tests of clients; none by default.
	Faults Faults
	// Prefix is the URL path the tree is served under ("/dav": the root
	// is /dav/); "" serves it at "/". Requests outside it get 404.
	Prefix string
	// Props, when set, gives properties the server computes for the file
	// or directory at name (a slash path inside the tree), answered by
	// PROPFIND beside the dead ones (values are text).
	Props func(name string, isDir bool) map[xml.Name]string
}

// New returns an http.Handler serving the directory root over WebDAV at "/".
func New(root string, opts Options) (http.Handler, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("davserver: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("davserver: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("davserver: %s is not a directory", abs)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	fsys := &fileSystem{Dir: webdav.Dir(abs), root: abs, firstPropOnly: opts.Faults.FirstPropOnly,
		hideDotNames: opts.Faults.HideDotNames, props: opts.Props}
	s := &server{
		opts: opts,
		log:  log,
		fs:   fsys,
		dav: &webdav.Handler{
			FileSystem: fsys,
			LockSystem: webdav.NewMemLS(),
			Logger: func(r *http.Request, err error) {
				if err != nil {
					log.Debug("webdav", "method", r.Method, "path", r.URL.Path, "err", err)
				}
			},
		},
		locks:  newKeyedMutex(),
		prefix: strings.TrimSuffix(opts.Prefix, "/"),
	}
	s.dav.Prefix = s.prefix
	return s, nil
}

// server checks authentication and PUT preconditions, then hands the request
// to x/net/webdav.
type server struct {
	opts  Options
	log   *slog.Logger
	fs    *fileSystem
	dav   *webdav.Handler
	locks *keyedMutex
	// prefix is Options.Prefix without its trailing slash.
	prefix string
}

// local is the path of r inside the served tree (Options.Prefix taken
// off), and false when r is outside it.
func (s *server) local(r *http.Request) (string, bool) {
	if s.prefix == "" {
		return r.URL.Path, true
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// ServeHTTP serves one WebDAV request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="cloudmount", charset="UTF-8"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	if r.Method == "PROPFIND" && !finiteDepth(r.Header.Get("Depth")) {
		// Like Apache's default (DavDepthInfinity Off): one request must not
		// walk the whole served tree.
		w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="utf-8"?>` +
			`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`))
		return
	}
	name, ok := s.local(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.refuseByFault(w, r, name) {
		return
	}
	if r.Method == http.MethodPut {
		unlock := s.locks.lock(cleanURLPath(name))
		defer unlock()
		if status := s.checkPut(r.Context(), r, name); status != 0 && !s.opts.Faults.NoETags {
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	if s.opts.Faults.NoETags {
		nw := &noETagWriter{ResponseWriter: w, buffer: r.Method == "PROPFIND"}
		defer nw.done()
		w = nw
	}
	s.dav.ServeHTTP(w, r)
}

// finiteDepth reports whether a PROPFIND Depth header is 0 or 1 (absent
// means infinity).
func finiteDepth(h string) bool {
	h = strings.TrimSpace(h)
	return h == "0" || h == "1"
}

// authorized checks HTTP basic credentials when a user is configured.
func (s *server) authorized(r *http.Request) bool {
	if s.opts.User == "" {
		return true
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.User)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.Password)) == 1
	return userOK && passOK
}

// checkPut evaluates If-Match and If-None-Match of a PUT (RFC 9110 13.1.1,
// 13.1.2) against the current ETag, and returns 412 when they fail, else 0.
func (s *server) checkPut(ctx context.Context, r *http.Request, name string) int {
	im, inm := r.Header.Values("If-Match"), r.Header.Values("If-None-Match")
	if len(im) == 0 && len(inm) == 0 {
		return 0
	}
	etag := ""
	if fi, err := s.fs.Stat(ctx, name); err == nil {
		etag = etagOf(fi)
	}
	if len(im) > 0 && !matchList(im, etag, true) {
		return http.StatusPreconditionFailed
	}
	if len(inm) > 0 && matchList(inm, etag, false) {
		return http.StatusPreconditionFailed
	}
	return 0
}
