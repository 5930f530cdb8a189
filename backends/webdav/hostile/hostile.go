// Package hostile is a WebDAV server for tests that misbehaves on request:
// endless or huge listings, hrefs that are not children of the listed
// collection, names no local filesystem can hold, replies whose length or
// range disagree with the file, and redirects. In Normal mode it is the
// project's own server (davserver) over a temporary directory, so that a
// backend can be created and a mount started against it before the mode
// is switched.
//
// It runs in-process on 127.0.0.1 (httptest) and is used by the tests of
// backends/webdav and fs.
package hostile

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// The credentials the server asks for.
const (
	User     = "mallory"
	Password = "pa55-for-tests"
)

// Mode is how the server misbehaves.
type Mode string

// The modes. Listing modes change the replies to PROPFIND with Depth 1,
// data modes the replies to GET.
const (
	// Normal serves the directory faithfully.
	Normal Mode = "normal"
	// EndlessListing sends <response> elements without end.
	EndlessListing Mode = "endless-listing"
	// EndlessElement sends one <response> whose href never ends.
	EndlessElement Mode = "endless-element"
	// EndlessPadding sends small elements cloudmount does not use
	// (responsedescription) without end inside the multistatus.
	EndlessPadding Mode = "endless-padding"
	// MillionEntries sends a valid listing of the collection itself and
	// 1,000,000 files, generated as it is sent.
	MillionEntries Mode = "million-entries"
	// NonChildren adds hrefs that are not direct children of the listed
	// collection: "..", an encoded slash, another host, a deeper path, a
	// path outside the mount.
	NonChildren Mode = "non-children"
	// BadNames adds names with control characters (kept), over 255 bytes,
	// with an encoded NUL, and with an encoded slash (all three skipped).
	BadNames Mode = "bad-names"
	// ShortBody answers a GET with 200 and the whole file but its last 100
	// bytes, with a Content-Length that says so.
	ShortBody Mode = "short-body"
	// LongBody answers a GET with 200 and the whole file followed by 100
	// more bytes, with a Content-Length that says so.
	LongBody Mode = "long-body"
	// ShortRange answers a ranged GET with 206, the Content-Range asked,
	// and 100 bytes fewer than it says (Content-Length says so too).
	ShortRange Mode = "short-range"
	// WrongTotal answers a ranged GET with 206 and the range asked, but a
	// Content-Range total 1000 bytes more than the file's, and bytes that
	// are not the file's ('X').
	WrongTotal Mode = "wrong-total"
	// WrongStart answers a ranged GET with 206 for the range one byte
	// later than asked.
	WrongStart Mode = "wrong-start"
	// RedirectPut, RedirectGet and RedirectPropfind answer that method
	// with 307 Temporary Redirect to the same path on Target.
	RedirectPut      Mode = "redirect-put"
	RedirectGet      Mode = "redirect-get"
	RedirectPropfind Mode = "redirect-propfind"
)

// Million is the number of files MillionEntries lists.
const Million = 1_000_000

// NonChildHrefs are the hrefs NonChildren adds (host is replaced by the
// server's own host:port where it appears).
var NonChildHrefs = []string{
	"/dav/..",
	"/dav/../escape.txt",
	"/dav/%2e%2e/passwd",
	"/dav/sub%2Fphantom.txt",
	"http://other.example/dav/other-host.txt",
	"https://HOST/dav/other-scheme.txt",
	"/dav/sub/deeper.txt",
	"/elsewhere/outside.txt",
}

// BadNameHrefs are the hrefs BadNames adds; ControlName is the one that is
// kept.
var BadNameHrefs = []string{
	"/dav/" + ControlName,
	"/dav/" + strings.Repeat("n", 256),
	"/dav/nul%00byte.txt",
	"/dav/enc%2fslash.txt",
}

// ControlName is a legal name with control characters (ESC, a newline)
// that a log line must escape.
const ControlName = "ctl%1B%5B31mred%0Aforged=1.txt"

// Server is a hostile WebDAV server. Its collection is URL; files put in
// Dir are served under it.
type Server struct {
	// URL is the collection to mount: http://127.0.0.1:port/dav/.
	URL string
	// Dir is the directory served as URL.
	Dir string
	// Target is where the redirect modes point: a second server that
	// answers 200 to everything and counts the requests it gets.
	Target string

	ts, target *httptest.Server
	dav        http.Handler
	mode       atomic.Value // Mode
	delay      atomic.Int64 // listing delay, ns

	targetHits atomic.Int64
	targetAuth atomic.Int64

	mu        sync.Mutex
	propfinds map[string]int // PROPFIND Depth 1 per URL path
	gets      int
}

// New starts a server in Normal mode; it stops with the test.
func New(t testing.TB) *Server {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "dav")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dav, err := davserver.New(root, davserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, dav: dav, propfinds: map[string]int{}}
	s.mode.Store(Normal)
	s.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.targetHits.Add(1)
		if r.Header.Get("Authorization") != "" {
			s.targetAuth.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.target.Close)
	s.Target = s.target.URL
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.ts.Close)
	s.URL = s.ts.URL + "/dav/"
	return s
}

// SetMode switches the server's behaviour for the requests that follow.
func (s *Server) SetMode(m Mode) { s.mode.Store(m) }

// SetListingDelay makes every PROPFIND with Depth 1 wait d before it is
// answered (a slow server).
func (s *Server) SetListingDelay(d time.Duration) { s.delay.Store(int64(d)) }

// WriteFile puts a file into the served collection (name relative to it).
func (s *Server) WriteFile(t testing.TB, name string, data []byte) {
	t.Helper()
	p := filepath.Join(s.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Listings is the number of PROPFIND requests with Depth 1 the server got
// for the collection name (relative, "" for the root).
func (s *Server) Listings(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.propfinds[strings.TrimSuffix("/dav/"+name, "/")]
}

// Gets is the number of GET requests the server got.
func (s *Server) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// TargetHits is the number of requests the redirect target got, and how
// many of them carried an Authorization header.
func (s *Server) TargetHits() (requests, withAuth int64) {
	return s.targetHits.Load(), s.targetAuth.Load()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != User || p != Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	mode := s.mode.Load().(Mode)
	depth1 := r.Method == "PROPFIND" && r.Header.Get("Depth") == "1"
	s.mu.Lock()
	if depth1 {
		s.propfinds[strings.TrimSuffix(r.URL.Path, "/")]++
	}
	if r.Method == http.MethodGet {
		s.gets++
	}
	s.mu.Unlock()
	if depth1 {
		if d := time.Duration(s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
	}
	switch {
	case mode == RedirectPut && r.Method == http.MethodPut,
		mode == RedirectGet && r.Method == http.MethodGet,
		mode == RedirectPropfind && r.Method == "PROPFIND":
		http.Redirect(w, r, s.Target+r.URL.Path, http.StatusTemporaryRedirect)
	case depth1 && s.listingMode(mode):
		s.serveListing(w, r, mode)
	case r.Method == http.MethodGet && s.dataMode(mode):
		s.serveData(w, r, mode)
	default:
		s.dav.ServeHTTP(w, r)
	}
}

func (s *Server) listingMode(m Mode) bool {
	switch m {
	case EndlessListing, EndlessElement, EndlessPadding, MillionEntries, NonChildren, BadNames:
		return true
	}
	return false
}

func (s *Server) dataMode(m Mode) bool {
	switch m {
	case ShortBody, LongBody, ShortRange, WrongTotal, WrongStart:
		return true
	}
	return false
}

const msHead = `<?xml version="1.0" encoding="utf-8"?>` + "\n" + `<D:multistatus xmlns:D="DAV:">`

// fileResponse is one <response> for a file of one byte.
func fileResponse(href string) string {
	return `<D:response><D:href>` + href + `</D:href><D:propstat><D:prop><D:resourcetype/>` +
		`<D:getcontentlength>1</D:getcontentlength><D:getetag>"e1"</D:getetag>` +
		`<D:getlastmodified>Mon, 23 Nov 2026 19:00:00 GMT</D:getlastmodified>` +
		`</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>` + "\n"
}

func dirResponse(href string) string {
	return `<D:response><D:href>` + href + `</D:href><D:propstat><D:prop>` +
		`<D:resourcetype><D:collection/></D:resourcetype>` +
		`</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>` + "\n"
}

func (s *Server) serveListing(w http.ResponseWriter, r *http.Request, mode Mode) {
	self := r.URL.EscapedPath()
	switch mode {
	case NonChildren, BadNames:
		// The true listing, with the hostile hrefs added at its end.
		rec := httptest.NewRecorder()
		s.dav.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		end := bytes.LastIndex(body, []byte("</"))
		if rec.Code != http.StatusMultiStatus || end < 0 {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
			return
		}
		hrefs := NonChildHrefs
		if mode == BadNames {
			hrefs = BadNameHrefs
		}
		var extra strings.Builder
		for _, h := range hrefs {
			extra.WriteString(fileResponse(strings.ReplaceAll(h, "HOST", r.Host)))
		}
		w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusMultiStatus)
		_, _ = w.Write(body[:end])
		_, _ = io.WriteString(w, extra.String())
		_, _ = w.Write(body[end:])
		return
	}
	w.Header().Set("Content-Type", `application/xml; charset="utf-8"`)
	w.WriteHeader(http.StatusMultiStatus)
	bw := &errWriter{w: w}
	bw.write(msHead + dirResponse(self))
	switch mode {
	case EndlessListing:
		for i := 0; bw.err == nil; i++ {
			bw.write(fileResponse(self + "endless-" + strconv.Itoa(i)))
		}
	case EndlessElement:
		bw.write(`<D:response><D:href>` + self)
		chunk := strings.Repeat("a", 64<<10)
		for bw.err == nil {
			bw.write(chunk)
		}
	case EndlessPadding:
		chunk := strings.Repeat("<D:responsedescription>padding</D:responsedescription>\n", 1000)
		for bw.err == nil {
			bw.write(chunk)
		}
	case MillionEntries:
		for i := 0; i < Million && bw.err == nil; i++ {
			bw.write(fileResponse(fmt.Sprintf("%sf%07d", self, i)))
		}
		bw.write("</D:multistatus>\n")
	}
}

// errWriter stops writing at the first error (the client hung up).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

// serveData answers a GET of a file with a reply that does not fit it.
func (s *Server) serveData(w http.ResponseWriter, r *http.Request, mode Mode) {
	rel := strings.TrimPrefix(path.Clean(r.URL.Path), "/dav")
	data, err := os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	size := int64(len(data))
	first, last := int64(0), size-1
	ranged := false
	if h, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
		a, z, _ := strings.Cut(h, "-")
		first, _ = strconv.ParseInt(a, 10, 64)
		if z != "" {
			last, _ = strconv.ParseInt(z, 10, 64)
		}
		last = min(last, size-1)
		ranged = true
	}
	send := func(code int, hdr map[string]string, body []byte) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}
	switch {
	case mode == ShortBody:
		send(http.StatusOK, nil, data[:max(0, len(data)-100)])
	case mode == LongBody:
		send(http.StatusOK, nil, append(data, bytes.Repeat([]byte("+"), 100)...))
	case !ranged || first > last:
		send(http.StatusOK, nil, data)
	case mode == ShortRange:
		cr := fmt.Sprintf("bytes %d-%d/%d", first, last, size)
		part := data[first : last+1]
		send(http.StatusPartialContent, map[string]string{"Content-Range": cr}, part[:max(0, len(part)-100)])
	case mode == WrongTotal:
		cr := fmt.Sprintf("bytes %d-%d/%d", first, last, size+1000)
		send(http.StatusPartialContent, map[string]string{"Content-Range": cr}, bytes.Repeat([]byte("X"), int(last-first+1)))
	case mode == WrongStart:
		if first+1 > last {
			send(http.StatusOK, nil, data)
			return
		}
		cr := fmt.Sprintf("bytes %d-%d/%d", first+1, last, size)
		send(http.StatusPartialContent, map[string]string{"Content-Range": cr}, data[first+1:last+1])
	}
}
