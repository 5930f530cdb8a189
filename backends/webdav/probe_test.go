package webdav

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/webdav"

	"github.com/cloudmount/cloudmount/backends"
)

// readOnly refuses every write, like a read-only share.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "PUT", "PROPPATCH", "MKCOL", "DELETE", "MOVE":
			http.Error(w, "read-only", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ocMtime imitates ownCloud's X-OC-Mtime over a directory: it answers
// "X-OC-MTime: accepted" and sets the file's mtime.
func ocMtime(t *testing.T) http.Handler {
	dir := t.TempDir()
	h := &webdav.Handler{FileSystem: webdav.Dir(dir), LockSystem: webdav.NewMemLS()}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get("X-OC-Mtime")
		if r.Method != "PUT" || v == "" {
			h.ServeHTTP(w, r)
			return
		}
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "bad mtime", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-OC-MTime", "accepted")
		h.ServeHTTP(w, r)
		mt := time.Unix(sec, 0)
		_ = os.Chtimes(filepath.Join(dir, filepath.FromSlash(r.URL.Path)), mt, mt)
	})
}

func TestCapabilities(t *testing.T) {
	props := backends.MetaField{Stored: true}
	cases := []struct {
		name    string
		handler http.Handler
		want    backends.Capabilities
	}{
		{"memfs", memHandler("/"), backends.Capabilities{MTime: props, Mode: props, Owner: props, Hash: props, Type: props}},
		{"davserver", davserverHandler(t), backends.Capabilities{MTime: props, Mode: props, Owner: props, Hash: props, Type: props, ConditionalPut: true, Quota: true}},
		{"dir without dead props", dirHandler(t), backends.Capabilities{}},
		{"read-only", readOnly(memHandler("/")), backends.Capabilities{ReadOnly: true}},
		{"X-OC-Mtime", ocMtime(t), backends.Capabilities{MTime: backends.MetaField{OnPut: true, Precision: time.Second}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var seen []string
			ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = append(seen, r.Method+" "+r.URL.Path)
				c.handler.ServeHTTP(w, r)
			}))
			b := connect(t, ts.URL+"/")
			caps, err := b.Capabilities(testContext(t))
			if err != nil {
				t.Fatalf("Capabilities: %v", err)
			}
			got := caps
			got.Notes = nil
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", caps, c.want)
			}
			if len(caps.Notes) == 0 {
				t.Error("no notes")
			}
			t.Logf("notes: %s", strings.Join(caps.Notes, "; "))
			entries, err := b.List(testContext(t), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name, ProbePrefix) {
					t.Errorf("probe left %q behind", e.Name)
				}
			}
			// The answer is kept: no second probe.
			n := len(seen)
			if _, err := b.Capabilities(testContext(t)); err != nil || len(seen) != n {
				t.Errorf("second Capabilities call probed again (%v)", err)
			}
		})
	}
}

// TestMTimeOnPut: with X-OC-Mtime, the mtime given to Put comes back (to the
// second) without dead properties.
func TestMTimeOnPut(t *testing.T) {
	b := connect(t, serve(t, ocMtime(t)).URL+"/")
	mt := time.Unix(1500000000, 999)
	e, err := b.Put(testContext(t), "f", strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}})
	if err != nil {
		t.Fatal(err)
	}
	if !e.ModTime.Equal(time.Unix(1500000000, 0)) {
		t.Errorf("ModTime %v, want %v", e.ModTime, time.Unix(1500000000, 0))
	}
}

// weakETags makes a server hand out weak ETags, as Apache does for a file
// changed within the last second, and check If-Match strongly.
func weakETags(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PROPFIND" {
			h.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		body := bytes.ReplaceAll(rec.body.Bytes(), []byte(`<D:getetag>"`), []byte(`<D:getetag>W/"`))
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.code)
		_, _ = w.Write(body)
	})
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func TestWeakETag(t *testing.T) {
	var ifMatch []string
	dav := weakETags(davserverHandler(t))
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && !strings.Contains(r.URL.Path, ProbePrefix) {
			ifMatch = append(ifMatch, r.Header.Get("If-Match"))
		}
		dav.ServeHTTP(w, r)
	}))
	b := connect(t, ts.URL+"/")
	ctx := testContext(t)
	e1, err := b.Put(ctx, "w", strings.NewReader("one"), 3, backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e1.Version, `"`) {
		t.Fatalf("version %q: want the ETag without W/ (a Version has no HTTP syntax)", e1.Version)
	}
	time.Sleep(10 * time.Millisecond)
	e2, err := b.Put(ctx, "w", strings.NewReader("two!"), 4, backends.PutOptions{IfMatch: e1.Version})
	if err != nil {
		t.Fatalf("Put with current weak ETag: %v", err)
	}
	if _, err := b.Put(ctx, "w", strings.NewReader("3"), 1, backends.PutOptions{IfMatch: e1.Version}); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("Put with stale weak ETag: %v, want ErrPrecondition", err)
	}
	if got := readAll(t, b, "w", 0, -1); got != "two!" {
		t.Errorf("content %q", got)
	}
	if len(ifMatch) != 2 || ifMatch[0] != "" || ifMatch[1] != "" {
		t.Errorf("If-Match headers sent: %q (a weak ETag must never be sent)", ifMatch)
	}
	_ = e2
}

// TestStrongETagSent: on a server that honours conditions a strong ETag goes
// out as If-Match (no PROPFIND round trip, no race).
func TestStrongETagSent(t *testing.T) {
	var got []string
	dav := davserverHandler(t)
	ts := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && !strings.Contains(r.URL.Path, ProbePrefix) {
			got = append(got, r.Header.Get("If-Match")+"|"+r.Header.Get("If-None-Match"))
		}
		dav.ServeHTTP(w, r)
	}))
	b := connect(t, ts.URL+"/")
	e, err := b.Put(testContext(t), "s", strings.NewReader("1"), 1, backends.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(testContext(t), "s", io.LimitReader(strings.NewReader("22"), 2), 2, backends.PutOptions{IfMatch: e.Version}); err != nil {
		t.Fatal(err)
	}
	want := []string{"|*", e.Version + "|"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("headers %q, want %q", got, want)
	}
}
