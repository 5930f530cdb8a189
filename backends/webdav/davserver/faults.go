package davserver

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Faults make the server behave as less complete WebDAV servers do, so
// that clients can be tested against them. The zero value has none; the
// demo server never sets any.
type Faults struct {
	// FirstPropOnly: a PROPPATCH is answered as a success for every
	// property, but only the first property it sets is kept (some servers
	// answer 204 and keep one).
	FirstPropOnly bool
	// NoDeadProps: PROPPATCH is refused with 405 (nginx's dav modules).
	NoDeadProps bool
	// NoETags: no ETag in PROPFIND replies or in headers, and If-Match and
	// If-None-Match are ignored (nginx's dav-ext).
	NoETags bool
	// CollectionSlash: a MOVE, COPY or DELETE of a collection addressed
	// without its trailing slash is refused (400, 409), and so is a MOVE
	// or COPY whose two URLs do not agree on the slash (409), as nginx
	// does.
	CollectionSlash bool
	// HideDotNames: a listing (PROPFIND Depth 1) leaves out every name
	// that starts with a dot, as nginx's dav-ext does; such a file is
	// still stored, read and found by a PROPFIND of its own.
	HideDotNames bool
}

// refuseByFault answers r (of name, in the tree) as the configured faults
// make the server do, and reports whether it did.
func (s *server) refuseByFault(w http.ResponseWriter, r *http.Request, name string) bool {
	f := s.opts.Faults
	if f.NoDeadProps && r.Method == "PROPPATCH" {
		http.Error(w, "PROPPATCH not supported", http.StatusMethodNotAllowed)
		return true
	}
	if !f.CollectionSlash {
		return false
	}
	switch r.Method {
	case "MOVE", "COPY", "DELETE":
	default:
		return false
	}
	slash := strings.HasSuffix(r.URL.Path, "/")
	if r.Method != "DELETE" {
		if u, err := url.Parse(r.Header.Get("Destination")); err == nil && strings.HasSuffix(u.Path, "/") != slash {
			http.Error(w, "both URLs must be collections or neither", http.StatusConflict)
			return true
		}
	}
	fi, err := s.fs.Stat(r.Context(), name)
	if err != nil || !fi.IsDir() || slash {
		return false
	}
	status := http.StatusBadRequest
	if r.Method == "DELETE" {
		status = http.StatusConflict
	}
	http.Error(w, "is a collection", status)
	return true
}

// etagElement matches a getetag property in a PROPFIND reply.
var etagElement = regexp.MustCompile(`<(?:[A-Za-z][\w.-]*:)?getetag(?:\s[^>]*)?>[^<]*</(?:[A-Za-z][\w.-]*:)?getetag>`)

// noETagWriter drops the ETag header and, for PROPFIND, buffers the reply
// to take every getetag property out of it (done writes it).
type noETagWriter struct {
	http.ResponseWriter
	buffer bool
	status int
	body   bytes.Buffer
}

// WriteHeader sends the status without an ETag header (or keeps it until
// done, when buffering).
func (w *noETagWriter) WriteHeader(status int) {
	w.Header().Del("ETag")
	if w.buffer {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write passes b on, or keeps it until done.
func (w *noETagWriter) Write(b []byte) (int, error) {
	if w.buffer {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		return w.body.Write(b)
	}
	w.Header().Del("ETag")
	return w.ResponseWriter.Write(b)
}

// done writes a buffered reply, without its getetag properties.
func (w *noETagWriter) done() {
	if !w.buffer || w.status == 0 {
		return
	}
	body := etagElement.ReplaceAll(w.body.Bytes(), nil)
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(body)
}
