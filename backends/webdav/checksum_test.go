package webdav

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/adler32"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

func sum256(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestOCSHA256(t *testing.T) {
	empty := sum256("")
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709 MD5:d41d8cd98f00b204e9800998ecf8427e ADLER32:00000001", ""},
		{"SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709 SHA256:" + strings.ToUpper(empty), empty},
		{"\n  sha256:" + empty + "\n", empty},
		{"MD5:d41d8cd98f00b204e9800998ecf8427e,SHA-256:" + empty, empty},
		{"SHA256:" + empty[:63], ""},          // too short
		{"SHA256:" + empty[:63] + "g", ""},    // not hex
		{"SHA2560:" + empty, ""},              // another algorithm
		{"XSHA256:" + empty + " SHA256:", ""}, // neither reads
	} {
		if got := ocSHA256(c.in); got != c.want {
			t.Errorf("ocSHA256(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestOCChecksumsProperty: oc:checksums gives the entry's hash where no
// cm:sha256 valid for the version does; a valid cm:sha256 wins.
func TestOCChecksumsProperty(t *testing.T) {
	a, b := sum256("a"), sum256("b")
	reply := func(props string) string {
		return `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:cm="urn:x-cloudmount:1">` +
			`<d:response><d:href>/remote.php/webdav/f</d:href><d:propstat><d:prop>` +
			`<d:getetag>"v2"</d:getetag><d:getcontentlength>1</d:getcontentlength>` + props +
			`</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`
	}
	for _, c := range []struct {
		name, props, want string
	}{
		{"nextcloud", `<oc:checksums><oc:checksum>SHA256:` + a + `</oc:checksum></oc:checksums>`, a},
		{"owncloud 10", `<oc:checksums><oc:checksum>SHA1:86f7e437faa5a7fce15d1ddcb9eaeaea377667b8 MD5:0cc175b9c0f1b6a831c399e269772661 ADLER32:00620062</oc:checksum></oc:checksums>`, ""},
		{"list without checksum element", `<oc:checksums>MD5:0cc175b9c0f1b6a831c399e269772661 SHA256:` + a + `</oc:checksums>`, a},
		{"empty", `<oc:checksums/>`, ""},
		{"cm:sha256 for this version wins", `<cm:sha256>` + b + `</cm:sha256><cm:etag>"v2"</cm:etag><oc:checksums><oc:checksum>SHA256:` + a + `</oc:checksum></oc:checksums>`, b},
		{"stale cm:sha256 gives way", `<cm:sha256>` + b + `</cm:sha256><cm:etag>"v1"</cm:etag><oc:checksums><oc:checksum>SHA256:` + a + `</oc:checksum></oc:checksums>`, a},
		{"oc namespace only", `<checksums xmlns="urn:other"><checksum>SHA256:` + a + `</checksum></checksums>`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := parseMultistatus(strings.NewReader(reply(c.props)))
			if err != nil || len(res) != 1 {
				t.Fatalf("%+v, %v", res, err)
			}
			if e := (&Backend{}).entry(&res[0], "f"); e.Meta.SHA256 != c.want {
				t.Errorf("SHA256 %q, want %q", e.Meta.SHA256, c.want)
			}
		})
	}
	// Directories have no content hash.
	res, _ := parseMultistatus(strings.NewReader(strings.Replace(reply(`<oc:checksums>SHA256:`+a+`</oc:checksums>`),
		`<d:getetag>`, `<d:resourcetype><d:collection/></d:resourcetype><d:getetag>`, 1)))
	if e := (&Backend{}).entry(&res[0], "d"); !e.IsDir || e.Meta.SHA256 != "" {
		t.Errorf("directory: %+v", e)
	}
}

// ocServer imitates the checksum handling of ownCloud-style servers over a
// directory without dead properties (so any hash read back comes from
// oc:checksums). Nextcloud keeps an OC-Checksum header as given and clears
// the checksum on an upload without one; ownCloud 10 (verify) computes SHA1,
// MD5 and ADLER32 of every upload, refuses with 400 an OC-Checksum that is
// none of those, and reports what it computed.
type ocServer struct {
	verify bool
	h      http.Handler

	mu      sync.Mutex
	sums    map[string]string // URL path → value of oc:checksums
	headers []string          // OC-Checksum of each PUT, but the probe's
}

func newOCServer(t *testing.T, verify bool) *ocServer {
	return &ocServer{verify: verify, h: dirHandler(t), sums: map[string]string{}}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

var hrefRE = regexp.MustCompile(`<D:href>([^<]*)</D:href>`)

func (s *ocServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch r.Method {
	case "PUT":
		body, _ := io.ReadAll(r.Body)
		hdr := r.Header.Get("OC-Checksum")
		if !strings.Contains(p, ProbePrefix) {
			s.mu.Lock()
			s.headers = append(s.headers, hdr)
			s.mu.Unlock()
		}
		value := hdr
		if s.verify {
			value = fmt.Sprintf("SHA1:%x MD5:%x ADLER32:%08x", sha1.Sum(body), md5.Sum(body), adler32.Checksum(body))
			if hdr != "" && !strings.Contains(value, hdr) {
				http.Error(w, "The computed checksum does not match the one received from the client.", http.StatusBadRequest)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		s.h.ServeHTTP(sw, r)
		if sw.code < 300 {
			s.mu.Lock()
			s.sums[p] = value
			s.mu.Unlock()
		}
	case "DELETE":
		s.h.ServeHTTP(w, r)
		s.mu.Lock()
		delete(s.sums, p)
		s.mu.Unlock()
	case "MOVE":
		s.h.ServeHTTP(w, r)
		if u, err := url.Parse(r.Header.Get("Destination")); err == nil {
			s.mu.Lock()
			if v, ok := s.sums[p]; ok {
				s.sums[strings.TrimSuffix(u.Path, "/")] = v
				delete(s.sums, p)
			}
			s.mu.Unlock()
		}
	case "PROPFIND":
		req, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(req))
		rec := &recorder{header: http.Header{}}
		s.h.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		out := rec.body.Bytes()
		if bytes.Contains(req, []byte(OCNS)) && bytes.Contains(req, []byte("checksums")) {
			s.mu.Lock()
			out = hrefRE.ReplaceAllFunc(out, func(m []byte) []byte {
				href, err := url.PathUnescape(string(hrefRE.FindSubmatch(m)[1]))
				v, ok := s.sums[strings.TrimSuffix(href, "/")]
				if err != nil || !ok || v == "" {
					return m
				}
				return append(append([]byte(nil), m...), `<D:propstat><D:prop><oc:checksums xmlns:oc="`+OCNS+`"><oc:checksum>`+v+
					`</oc:checksum></oc:checksums></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`...)
			})
			s.mu.Unlock()
		}
		w.Header().Del("Content-Length")
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		_, _ = w.Write(out)
	default:
		s.h.ServeHTTP(w, r)
	}
}

func (s *ocServer) sentHeaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.headers...)
}

// TestOCChecksumUpload: uploads carry OC-Checksum where the probe found that
// harmless (also on servers that ignore it), never where it would fail the
// upload (ownCloud 10); the hash a server keeps comes back in Stat and List,
// and goes away when someone else replaces the file.
func TestOCChecksumUpload(t *testing.T) {
	const content = "backup data\n"
	sum := sum256(content)
	mt := time.Unix(1700000000, 0)

	t.Run("nextcloud", func(t *testing.T) {
		srv := newOCServer(t, false)
		ts := serve(t, srv)
		b := connect(t, ts.URL+"/")
		caps, err := b.Capabilities(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(caps.Notes, "\n"), "OC-Checksum: SHA256 sent with uploads and reported back") {
			t.Errorf("notes: %q", caps.Notes)
		}
		e, err := b.Put(testContext(t), "f", strings.NewReader(content), int64(len(content)),
			backends.PutOptions{Meta: backends.Meta{MTime: &mt, SHA256: sum}})
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.sentHeaders(); len(got) != 1 || got[0] != "SHA256:"+sum {
			t.Errorf("OC-Checksum headers sent: %q, want [SHA256:%s]", got, sum)
		}
		if e.Meta.SHA256 != sum {
			t.Errorf("Put returned SHA256 %q, want %q", e.Meta.SHA256, sum)
		}
		if st, err := b.Stat(testContext(t), "f"); err != nil || st.Meta.SHA256 != sum {
			t.Errorf("Stat: %+v, %v; want SHA256 %s from oc:checksums", st, err, sum)
		}
		if ls, err := b.List(testContext(t), ""); err != nil || len(ls) != 1 || ls[0].Meta.SHA256 != sum {
			t.Errorf("List: %+v, %v", ls, err)
		}
		if err := b.Rename(testContext(t), "f", "g", false); err != nil {
			t.Fatal(err)
		}
		if st, err := b.Stat(testContext(t), "g"); err != nil || st.Meta.SHA256 != sum {
			t.Errorf("after rename: %+v, %v", st, err)
		}

		// Another client replaces the file without a checksum.
		req, _ := http.NewRequest("PUT", ts.URL+"/g", strings.NewReader("changed elsewhere"))
		req.SetBasicAuth(testUser, testPass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if st, err := b.Stat(testContext(t), "g"); err != nil || st.Meta.SHA256 != "" {
			t.Errorf("after a change by another client: %+v, %v; want no hash", st, err)
		}

		// No hash known: no header.
		putString(t, b, "h", "x")
		if got := srv.sentHeaders(); len(got) != 3 || got[2] != "" { // [ours, the other client's, this one]
			t.Errorf("OC-Checksum headers sent: %q, want none for an upload without hash", got)
		}
	})

	t.Run("owncloud 10", func(t *testing.T) {
		srv := newOCServer(t, true)
		b := connect(t, serve(t, srv).URL+"/")
		caps, err := b.Capabilities(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(caps.Notes, "\n"), "OC-Checksum: an upload with a SHA256 was refused (HTTP 400") {
			t.Errorf("notes: %q", caps.Notes)
		}
		if _, err := b.Put(testContext(t), "f", strings.NewReader(content), int64(len(content)),
			backends.PutOptions{Meta: backends.Meta{MTime: &mt, SHA256: sum}}); err != nil {
			t.Fatalf("upload failed: %v", err)
		}
		if got := srv.sentHeaders(); len(got) != 1 || got[0] != "" {
			t.Errorf("OC-Checksum headers sent: %q, want none", got)
		}
		if got := readAll(t, b, "f", 0, -1); got != content {
			t.Errorf("content %q", got)
		}
		if st, err := b.Stat(testContext(t), "f"); err != nil || st.Meta.SHA256 != "" {
			t.Errorf("Stat: %+v, %v; the server reports no SHA256", st, err)
		}
	})

	t.Run("server that ignores it", func(t *testing.T) {
		var got []string
		var mu sync.Mutex
		h := memHandler("/")
		b := connect(t, serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "PUT" && !strings.Contains(r.URL.Path, ProbePrefix) {
				mu.Lock()
				got = append(got, r.Header.Get("OC-Checksum"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})).URL+"/")
		e, err := b.Put(testContext(t), "f", strings.NewReader(content), int64(len(content)),
			backends.PutOptions{Meta: backends.Meta{SHA256: sum}})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0] != "SHA256:"+sum {
			t.Errorf("OC-Checksum headers sent: %q", got)
		}
		if e.Meta.SHA256 != sum {
			t.Errorf("SHA256 %q from the dead property, want %q", e.Meta.SHA256, sum)
		}
	})
}
