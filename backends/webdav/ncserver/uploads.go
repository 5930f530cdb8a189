package ncserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// The uploads endpoint, by the rules of chunking v2 as the developer
// manual states them:
//
//   - MKCOL BASE/remote.php/dav/uploads/USERID/ID starts an upload; every
//     request of it carries a Destination header naming the target below
//     BASE/remote.php/dav/files/USERID/, the same each time (400 otherwise);
//   - PUT ID/N stores chunk N, a number from 1 to 10000 (400 otherwise),
//     with OC-Total-Length, the size of the whole file, the same on every
//     chunk; a chunk may be replaced; GET of a chunk is refused (403);
//   - PROPFIND ID (Depth 0 or 1) lists the chunks with their sizes;
//   - MOVE ID/.file assembles the chunks in the order of their numbers
//     onto the Destination: the numbers must run from 1 without a gap,
//     every chunk but the last must be MinChunk to MaxChunk bytes, the
//     OC-Total-Length given must be the sum; an OC-Checksum "SHA256:hex"
//     must match the assembled bytes (the real server stores it
//     unchecked); X-OC-Mtime sets the mtime; If-Match is compared with the
//     ETag of the Destination, If-None-Match: * and Overwrite: F refuse an
//     existing one (412); the upload is gone afterwards;
//   - DELETE ID gives the upload up.
//
// Uploads live in memory for the life of the Server.

// upload is one upload collection.
type upload struct {
	dest   string           // decoded URL path of the Destination
	total  int64            // OC-Total-Length of its chunks, -1 before the first
	chunks map[int64][]byte // by number
	names  map[int64]string // the name each chunk was PUT as
}

// serveUploads serves BASE/remote.php/dav/uploads/USERID/….
func (s *Server) serveUploads(w http.ResponseWriter, r *http.Request) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, s.uploadsPrefix()), "/")
	id, name, _ := strings.Cut(rest, "/")
	if id == "" || strings.Contains(name, "/") {
		s.count("upload " + r.Method)
		http.Error(w, "not an upload or chunk", http.StatusForbidden)
		return
	}
	switch {
	case name == "" && r.Method == "MKCOL":
		s.count("upload MKCOL")
		s.mkcolUpload(w, r, id)
	case name == "" && r.Method == "PROPFIND":
		s.count("upload PROPFIND")
		s.listUpload(w, r, id)
	case name == "" && r.Method == http.MethodDelete:
		s.count("upload DELETE")
		s.mu.Lock()
		_, ok := s.uploads[id]
		delete(s.uploads, id)
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case name == ".file" && r.Method == "MOVE":
		s.count("assembly MOVE")
		s.assemble(w, r, id)
	case name != "" && r.Method == http.MethodPut:
		s.count("chunk PUT")
		s.putChunk(w, r, id, name)
	case name != "" && r.Method == http.MethodGet:
		http.Error(w, "chunks cannot be downloaded", http.StatusForbidden)
	default:
		s.count("upload " + r.Method)
		http.Error(w, "method not allowed here", http.StatusMethodNotAllowed)
	}
}

// destination is the decoded path of r's Destination header, when it
// names a file below the user's files; "" otherwise.
func (s *Server) destination(r *http.Request) string {
	u, err := url.Parse(r.Header.Get("Destination"))
	if err != nil || r.Header.Get("Destination") == "" {
		return ""
	}
	p := cleanPath(u.Path)
	if !strings.HasPrefix(p, s.filesPrefix()+"/") || u.Path != p {
		return ""
	}
	return p
}

// mkcolUpload starts an upload.
func (s *Server) mkcolUpload(w http.ResponseWriter, r *http.Request, id string) {
	dest := s.destination(r)
	if dest == "" {
		http.Error(w, "a Destination below the user's files is required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.uploads[id]; ok {
		http.Error(w, "the upload exists", http.StatusMethodNotAllowed)
		return
	}
	s.uploads[id] = &upload{dest: dest, total: -1, chunks: map[int64][]byte{}, names: map[int64]string{}}
	w.WriteHeader(http.StatusCreated)
}

// lookup finds upload id and checks the Destination of r against it; it
// answers the request itself when it returns nil. The caller holds s.mu.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, id string) *upload {
	up, ok := s.uploads[id]
	if !ok {
		http.NotFound(w, r)
		return nil
	}
	if d := s.destination(r); d != up.dest {
		http.Error(w, "the Destination differs from the upload's", http.StatusBadRequest)
		return nil
	}
	return up
}

// chunkNumber reads a chunk name: digits only, 1 to 10000.
func chunkNumber(name string) (int64, bool) {
	if name == "" || len(name) > 8 || strings.Trim(name, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(name, 10, 64)
	return n, err == nil && n >= 1 && n <= 10000
}

// putChunk stores one chunk.
func (s *Server) putChunk(w http.ResponseWriter, r *http.Request, id, name string) {
	n, ok := chunkNumber(name)
	if !ok {
		http.Error(w, "a chunk's name is a number from 1 to 10000", http.StatusBadRequest)
		return
	}
	total, err := strconv.ParseInt(r.Header.Get("OC-Total-Length"), 10, 64)
	if err != nil || total < 0 {
		http.Error(w, "OC-Total-Length is required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	up := s.lookup(w, r, id)
	s.mu.Unlock()
	if up == nil {
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxChunk+1))
	if err != nil {
		code := http.StatusBadRequest
		if strings.Contains(err.Error(), "too large") {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "reading the chunk: "+err.Error(), code)
		return
	}
	if int64(len(data)) > s.opts.MaxChunk {
		http.Error(w, "chunk larger than the maximum", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uploads[id] != up {
		http.NotFound(w, r)
		return
	}
	if up.total >= 0 && up.total != total {
		http.Error(w, "OC-Total-Length differs from the other chunks'", http.StatusBadRequest)
		return
	}
	up.total = total
	up.chunks[n] = data
	up.names[n] = name
	s.chunks = append(s.chunks, n)
	w.WriteHeader(http.StatusCreated)
}

// listUpload answers a PROPFIND of an upload: the collection and its
// chunks.
func (s *Server) listUpload(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	up, ok := s.uploads[id]
	var nums []int64
	sizes := map[int64]int{}
	names := map[int64]string{}
	if ok {
		for n, c := range up.chunks {
			nums = append(nums, n)
			sizes[n], names[n] = len(c), up.names[n]
		}
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	self := s.uploadsPrefix() + "/" + id + "/"
	w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusMultiStatus)
	fmt.Fprint(w, `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">`)
	fmt.Fprintf(w, `<d:response><d:href>%s</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype>`+
		`</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>`, xmlText(pathEscape(self)))
	if strings.TrimSpace(r.Header.Get("Depth")) != "0" {
		for _, n := range nums {
			fmt.Fprintf(w, `<d:response><d:href>%s</d:href><d:propstat><d:prop><d:resourcetype/>`+
				`<d:getcontentlength>%d</d:getcontentlength></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>`,
				xmlText(pathEscape(self+names[n])), sizes[n])
		}
	}
	fmt.Fprint(w, `</d:multistatus>`)
}

// assemble answers MOVE ID/.file.
func (s *Server) assemble(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := s.lookup(w, r, id)
	if up == nil {
		return
	}
	total, err := strconv.ParseInt(r.Header.Get("OC-Total-Length"), 10, 64)
	if err != nil || total < 0 {
		http.Error(w, "OC-Total-Length is required", http.StatusBadRequest)
		return
	}
	var data []byte
	last := int64(len(up.chunks))
	for n := int64(1); n <= last; n++ {
		c, ok := up.chunks[n]
		if !ok {
			http.Error(w, fmt.Sprintf("chunk %d is missing", n), http.StatusBadRequest)
			return
		}
		if size := int64(len(c)); size > s.opts.MaxChunk || (n < last && size < s.opts.MinChunk) {
			http.Error(w, fmt.Sprintf("chunk %d has %d bytes, not %d to %d", n, size, s.opts.MinChunk, s.opts.MaxChunk), http.StatusBadRequest)
			return
		}
		data = append(data, c...)
	}
	if int64(len(data)) != total {
		http.Error(w, fmt.Sprintf("the chunks hold %d bytes, OC-Total-Length says %d", len(data), total), http.StatusBadRequest)
		return
	}
	if sum := r.Header.Get("OC-Checksum"); sum != "" {
		algo, hexsum, _ := strings.Cut(sum, ":")
		got := sha256.Sum256(data)
		if strings.EqualFold(algo, "SHA256") && !strings.EqualFold(hexsum, hex.EncodeToString(got[:])) {
			http.Error(w, "OC-Checksum does not match the assembled file", http.StatusBadRequest)
			return
		}
	}
	var mtime int64
	hasMtime := false
	if h := r.Header.Get("X-OC-Mtime"); h != "" {
		if mtime, hasMtime = parseMtime(h); !hasMtime {
			http.Error(w, "bad X-OC-Mtime", http.StatusBadRequest)
			return
		}
	}
	target := s.local(strings.TrimPrefix(up.dest, s.filesPrefix()))
	fi, statErr := os.Stat(target)
	exists := statErr == nil
	switch {
	case exists && fi.IsDir():
		http.Error(w, "the destination is a directory", http.StatusBadRequest)
		return
	case exists && (r.Header.Get("Overwrite") == "F" || r.Header.Get("If-None-Match") == "*"):
		http.Error(w, "the destination exists", http.StatusPreconditionFailed)
		return
	case r.Header.Get("If-Match") != "" && (!exists || !etagListHas(r.Header.Get("If-Match"), davserver.ETagOf(fi))):
		http.Error(w, "the destination has another version", http.StatusPreconditionFailed)
		return
	}
	if pfi, err := os.Stat(filepath.Dir(target)); err != nil || !pfi.IsDir() {
		http.Error(w, "the destination's parent is missing", http.StatusConflict)
		return
	}
	if err := writeFile(target, data); err != nil {
		http.Error(w, "assembling: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if hasMtime {
		if err := setMtime(target, mtime); err == nil {
			w.Header().Set("X-OC-MTime", "accepted")
		}
	}
	delete(s.uploads, id)
	if fi, err := os.Stat(target); err == nil {
		w.Header().Set("ETag", davserver.ETagOf(fi))
	}
	if exists {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// etagListHas reports whether an If-Match value names etag (strong
// comparison).
func etagListHas(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t == "*" || t == etag {
			return true
		}
	}
	return false
}

// writeFile replaces target with data: a temporary file beside it, renamed.
func writeFile(target string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(target), ".ncserver-assembly-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), target)
}

// parseMtime reads X-OC-Mtime: seconds since the epoch.
func parseMtime(h string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	return v, err == nil && v >= 0
}

// setMtime sets the mtime (and atime) of a file to sec.
func setMtime(file string, sec int64) error {
	t := time.Unix(sec, 0)
	return os.Chtimes(file, t, t)
}

// cleanPath is the canonical form of a URL path.
func cleanPath(p string) string { return path.Clean("/" + p) }

// pathEscape percent-encodes each element of a path.
func pathEscape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// xmlText escapes s for XML character data.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
