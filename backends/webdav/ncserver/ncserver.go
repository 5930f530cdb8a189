// Package ncserver is a Nextcloud emulation for unit tests, written from
// the published protocol documentation (Nextcloud's developer manual:
// "Chunked file upload", the WebDAV basics, the OCS capabilities API) and
// from nothing else. It serves, below a base path:
//
//   - /status.php: installed, maintenance, version, versionstring,
//     productname (no authentication);
//   - /ocs/v1.php/cloud/capabilities?format=json: an OCS document with
//     capabilities.dav.chunking (basic authentication, and the header
//     OCS-APIRequest: true);
//   - /remote.php/dav/files/USERID/ and the legacy /remote.php/webdav/:
//     the same directory through package davserver, with X-OC-Mtime
//     honoured on PUT and {DAV:}current-user-principal answered;
//   - /remote.php/dav/uploads/USERID/: chunked uploads by the rules of
//     chunking v2 (see uploads.go).
//
// Options.BodyLimit makes every request body above it fail with 413, as a
// server behind a limit on request bodies does; Options.MinChunk lets tests
// use small chunks. Server.Count tells tests which requests came.
package ncserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// Options configure the emulation.
type Options struct {
	Login    string // basic authentication; required
	Password string
	// UserID is the user's id in dav paths; default Login. It differs
	// from the login name where users log in with an e-mail address.
	UserID string
	// Base is the path the instance is served under ("" or "/nextcloud").
	Base string
	// ProductName and Version are what status.php says (default
	// "Nextcloud", "28.0.4.1").
	ProductName, Version string
	// Chunking is capabilities.dav.chunking (default "1.0"); "-" leaves
	// it out.
	Chunking string
	// BodyLimit: a request body above this many bytes is refused with
	// 413 before it is read (0: no limit).
	BodyLimit int64
	// MinChunk and MaxChunk bound the chunks but the last (default 5 MB
	// and 5 GB, as Nextcloud).
	MinChunk, MaxChunk int64
	// StatusReply and CapabilitiesReply, when set, are sent instead of
	// the replies of status.php and the capabilities (hostile servers).
	StatusReply, CapabilitiesReply []byte
	// Permissions, when set, gives the oc:permissions letters of the
	// file or directory at a path of the user's tree ("/a/b"); the
	// default is everything (RGDNVCK for folders, RGDNVW for files). A
	// change the letters do not allow is refused with 403, as Nextcloud
	// refuses it on a read-only share.
	Permissions func(p string, isDir bool) string
	// Fault, when set, is asked about every authenticated request; a
	// status it returns is answered instead (0: serve the request).
	Fault  func(r *http.Request) int
	Logger *slog.Logger // nil: slog.Default()
}

// Server is the emulation; it is an http.Handler.
type Server struct {
	opts   Options
	dir    string
	files  http.Handler // davserver under BASE/remote.php/dav/files/USERID
	legacy http.Handler // davserver under BASE/remote.php/webdav
	log    *slog.Logger

	mu      sync.Mutex // protects the fields below
	counts  map[string]int
	chunks  []int64 // numbers of the chunks PUT, in order
	uploads map[string]*upload
}

// New serves dir as the user's files.
func New(dir string, opts Options) (*Server, error) {
	if opts.Login == "" {
		return nil, fmt.Errorf("ncserver: a login is required")
	}
	if opts.UserID == "" {
		opts.UserID = opts.Login
	}
	if opts.ProductName == "" {
		opts.ProductName = "Nextcloud"
	}
	if opts.Version == "" {
		opts.Version = "28.0.4.1"
	}
	if opts.Chunking == "" {
		opts.Chunking = "1.0"
	}
	if opts.MinChunk <= 0 {
		opts.MinChunk = 5 * 1000 * 1000
	}
	if opts.MaxChunk <= 0 {
		opts.MaxChunk = 5 * 1000 * 1000 * 1000
	}
	opts.Base = strings.TrimSuffix(opts.Base, "/")
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{opts: opts, dir: dir, log: log, counts: map[string]int{}, uploads: map[string]*upload{}}
	var err error
	if s.files, err = davserver.New(dir, davserver.Options{Logger: log, Prefix: s.filesPrefix(), Props: s.props}); err != nil {
		return nil, err
	}
	if s.legacy, err = davserver.New(dir, davserver.Options{Logger: log, Prefix: opts.Base + "/remote.php/webdav", Props: s.props}); err != nil {
		return nil, err
	}
	return s, nil
}

// filesPrefix is the path of the user's files: BASE/remote.php/dav/files/USERID.
func (s *Server) filesPrefix() string {
	return s.opts.Base + "/remote.php/dav/files/" + s.opts.UserID
}

// uploadsPrefix is the path of the user's uploads.
func (s *Server) uploadsPrefix() string {
	return s.opts.Base + "/remote.php/dav/uploads/" + s.opts.UserID
}

// Count is how many requests of a kind came: "status", "capabilities",
// "files PUT" (any method of the files endpoints), "upload MKCOL",
// "chunk PUT", "assembly MOVE", "upload DELETE", "upload PROPFIND".
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// ChunksPut returns the numbers of the chunks stored so far, in order, and
// forgets them.
func (s *Server) ChunksPut() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chunks
	s.chunks = nil
	return c
}

func (s *Server) count(kind string) {
	s.mu.Lock()
	s.counts[kind]++
	s.mu.Unlock()
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	base := s.opts.Base
	if p == base+"/status.php" {
		s.count("status")
		s.status(w)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Nextcloud", charset="UTF-8"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	if f := s.opts.Fault; f != nil {
		if code := f(r); code != 0 {
			http.Error(w, http.StatusText(code), code)
			return
		}
	}
	if lim := s.opts.BodyLimit; lim > 0 && r.ContentLength > lim {
		// Refused before a byte of the body is read, as a proxy's or
		// PHP's limit does.
		http.Error(w, "request entity too large", http.StatusRequestEntityTooLarge)
		return
	}
	if lim := s.opts.BodyLimit; lim > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, lim)
	}
	switch {
	case p == base+"/ocs/v1.php/cloud/capabilities" || p == base+"/ocs/v2.php/cloud/capabilities":
		s.count("capabilities")
		s.capabilities(w, r)
	case under(p, s.uploadsPrefix()):
		s.serveUploads(w, r)
	case under(p, s.filesPrefix()):
		s.count("files " + r.Method)
		s.serveFiles(w, r, s.files, s.filesPrefix())
	case under(p, base+"/remote.php/webdav"):
		s.count("files " + r.Method)
		s.serveFiles(w, r, s.legacy, base+"/remote.php/webdav")
	default:
		http.NotFound(w, r)
	}
}

// under reports whether p is prefix or below it.
func under(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

// authorized checks basic authentication.
func (s *Server) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.opts.Login)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.opts.Password)) == 1
}

// status answers status.php.
func (s *Server) status(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if s.opts.StatusReply != nil {
		_, _ = w.Write(s.opts.StatusReply)
		return
	}
	v := s.opts.Version
	if i := strings.LastIndexByte(v, '.'); strings.Count(v, ".") == 3 && i > 0 {
		v = v[:i]
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"installed": true, "maintenance": false, "needsDbUpgrade": false,
		"version": s.opts.Version, "versionstring": v, "edition": "",
		"productname": s.opts.ProductName, "extendedSupport": false,
	})
}

// capabilities answers the OCS capabilities.
func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("OCS-APIRequest") != "true" {
		http.Error(w, "CSRF check failed", http.StatusPreconditionFailed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if s.opts.CapabilitiesReply != nil {
		_, _ = w.Write(s.opts.CapabilitiesReply)
		return
	}
	dav := map[string]any{"bulkupload": "1.0"}
	if s.opts.Chunking != "-" {
		dav["chunking"] = s.opts.Chunking
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ocs": map[string]any{
		"meta": map[string]any{"status": "ok", "statuscode": 100, "message": "OK"},
		"data": map[string]any{
			"version":      map[string]any{"string": s.opts.Version},
			"capabilities": map[string]any{"dav": dav, "files": map[string]any{"bigfilechunking": true}},
		},
	}})
}

// serveFiles hands a request of the files endpoints to h (davserver under
// prefix), answering what davserver does not: current-user-principal, and
// X-OC-Mtime on PUT.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request, h http.Handler, prefix string) {
	if r.Method == "PROPFIND" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if bytes.Contains(body, []byte("current-user-principal")) {
			s.principal(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if !s.permitted(r, prefix) {
		http.Error(w, "permission denied", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodPut && r.Header.Get("X-OC-Mtime") != "" {
		mtime, ok := parseMtime(r.Header.Get("X-OC-Mtime"))
		if !ok {
			http.Error(w, "bad X-OC-Mtime", http.StatusBadRequest)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, prefix)
		w = &mtimeWriter{ResponseWriter: w, file: s.local(name), mtime: mtime}
	}
	h.ServeHTTP(w, r)
}

// local is the file of the tree at name (a URL path below the prefix).
func (s *Server) local(name string) string {
	return s.dir + "/" + strings.TrimPrefix(cleanPath(name), "/")
}

// principal answers a PROPFIND of the current user's principal.
func (s *Server) principal(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusMultiStatus)
	fmt.Fprintf(w, `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>%s</d:href>`+
		`<d:propstat><d:prop><d:current-user-principal><d:href>%s/remote.php/dav/principals/users/%s/</d:href>`+
		`</d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`,
		xmlText(r.URL.EscapedPath()), xmlText(s.opts.Base), xmlText(pathEscape(s.opts.UserID)))
}

// mtimeWriter sets the mtime of a file a PUT wrote once it succeeded, and
// says so (X-OC-MTime: accepted), with the file's new ETag.
type mtimeWriter struct {
	http.ResponseWriter
	file  string
	mtime int64
	done  bool
}

// WriteHeader applies the mtime before the status goes out.
func (w *mtimeWriter) WriteHeader(code int) {
	if w.done {
		return
	}
	w.done = true
	if code >= 200 && code <= 299 {
		if err := setMtime(w.file, w.mtime); err == nil {
			w.Header().Set("X-OC-MTime", "accepted")
			if fi, err := os.Stat(w.file); err == nil {
				w.Header().Set("ETag", davserver.ETagOf(fi))
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sends the status first, as net/http would.
func (w *mtimeWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
