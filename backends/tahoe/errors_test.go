package tahoe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// TestNewErrors: New explains each wrong setting without quoting the cap.
func TestNewErrors(t *testing.T) {
	f := newFakeNode(t)
	dir := f.newDir()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/"
	down.Close()
	fileCap := "URI:CHK:" + randB32(16) + ":" + randB32(32) + ":2:3:100"
	unknownDir := "URI:DIR2:" + randB32(16) + ":" + randB32(32)
	badDir := "URI:DIR2-MDMF:" + randB32(16) + "!" // well-formed kind, a key the node refuses
	for _, c := range []struct {
		name, url, cap string
		kind           error
		words          string
	}{
		{"node down", downURL, dir, backends.ErrUnavailable, "is the Tahoe node running? (tahoe run NODEDIR)"},
		{"a file cap", f.url(), fileCap, backends.ErrNotDir, "capability of a file"},
		{"an unknown kind", f.url(), "URI:NEWKIND:" + randB32(16), backends.ErrUnsupported, "does not know"},
		{"a verify cap", f.url(), "URI:DIR2-Verifier:" + randB32(16) + ":" + randB32(32), backends.ErrPermission, "verify capability"},
		{"a cap the grid does not have", f.url(), unknownDir, backends.ErrUnavailable, "unknown cap"},
		{"a cap the node refuses", f.url(), badDir, backends.ErrProtocol, "does not take"},
		{"no cap", f.url(), "  ", nil, "no directory capability"},
		{"not a cap", f.url(), "DIR2:" + randB32(16), nil, "not one"},
		{"a bad node URL", "127.0.0.1:3456", dir, nil, "node URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuffer
			cfg := testConfig(f, c.cap, &logs)
			cfg.NodeURL = c.url
			b, err := New(t.Context(), cfg)
			if err == nil {
				b.Close()
				t.Fatalf("New succeeded")
			}
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("New: %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.words) {
				t.Errorf("New: %q, want it to say %q", err, c.words)
			}
			checkNoCaps(t, f, "the error", err.Error())
			for _, s := range []string{c.cap, unknownDir, badDir, fileCap} {
				if len(strings.TrimSpace(s)) > 12 && strings.Contains(err.Error()+logs.String(), strings.TrimSpace(s)[9:]) {
					t.Errorf("the error or the log quotes the cap: %v", err)
				}
			}
		})
	}
}

// failure is a way the node can fail a request.
type failure struct {
	name  string
	serve func(w http.ResponseWriter, r *http.Request)
	kind  error // the sentinel the error must match, nil: any
}

// failures are the replies a node gives when things go wrong, most of
// them quoting the request's caps.
func failures(f *fakeNode) []failure {
	write := func(w http.ResponseWriter, rep reply) {
		if rep.ctype != "" {
			w.Header().Set("Content-Type", rep.ctype)
		}
		w.WriteHeader(rep.code)
		_, _ = io.WriteString(w, rep.body)
	}
	quote := func(r *http.Request) string {
		caps := f.allCaps()
		return r.URL.String() + " " + strings.Join(caps[max(0, len(caps)-5):], " ")
	}
	return []failure{
		{"a traceback", func(w http.ResponseWriter, r *http.Request) {
			write(w, traceback(r, "builtins.KeyError: '"+quote(r)+"'"))
		}, nil},
		{"a traceback of a full grid", func(w http.ResponseWriter, r *http.Request) {
			write(w, traceback(r, "allmydata.interfaces.UploadUnhappinessError: shares could be placed on only 1 server(s) "+quote(r)))
		}, backends.ErrUnavailable},
		{"not enough shares", func(w http.ResponseWriter, r *http.Request) {
			write(w, text(410, "NotEnoughSharesError: This indicates that some servers were unavailable "+quote(r)))
		}, backends.ErrUnavailable},
		{"an HTML 404", func(w http.ResponseWriter, r *http.Request) {
			write(w, errorPage(404, "No such child: "+quote(r)))
		}, backends.ErrNotFound},
		{"a JSON error", func(w http.ResponseWriter, r *http.Request) {
			write(w, text(409, `{"error": "There was already a child by that name `+quote(r)+`"}`))
		}, nil},
		{"a 503", func(w http.ResponseWriter, r *http.Request) {
			write(w, text(503, "down for maintenance "+quote(r)))
		}, backends.ErrUnavailable},
		{"garbage for JSON", func(w http.ResponseWriter, r *http.Request) {
			write(w, text(200, "[\"dirnode\", {\"children\": "+quote(r)))
		}, nil},
		{"a broken connection", func(w http.ResponseWriter, r *http.Request) {
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("no hijacker")
			}
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
		}, backends.ErrUnavailable},
		{"a node that never answers", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}, backends.ErrUnavailable},
	}
}

// TestNoCapsInErrors: every call, failing in every way at every kind of
// request it sends, returns an error that quotes no cap, and logs none.
func TestNoCapsInErrors(t *testing.T) {
	f := newFakeNode(t)
	var logs syncBuffer
	root := f.newDir()
	cfg := testConfig(f, root, &logs)
	cfg.Timeout = 200 * time.Millisecond
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.jitter = func() time.Duration { return time.Millisecond }
	defer b.Close()
	ctx := t.Context()
	setup := func() {
		f.setBefore(nil)
		for _, p := range []string{"d", "d/sub"} {
			_ = b.Mkdir(ctx, p)
		}
		for _, p := range []string{"d/new", "d/new2", "d/moved", "d/newdir"} {
			_ = b.Remove(ctx, p)
		}
		for _, p := range []string{"f", "d/g"} {
			if _, err := b.Put(ctx, p, strings.NewReader(strings.Repeat("data ", 30)), 150, backends.PutOptions{}); err != nil {
				t.Fatalf("setup: %v", err)
			}
		}
	}
	mode := os.FileMode(0o640)
	calls := []struct {
		name string
		call func() error
	}{
		{"Stat", func() error { _, err := b.Stat(ctx, "d/g"); return err }},
		{"Stat of the root", func() error { _, err := b.Stat(ctx, ""); return err }},
		{"List", func() error { _, err := b.List(ctx, "d"); return err }},
		{"Read", func() error {
			rc, err := b.Read(ctx, "d/g", 3, 20)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			return err
		}},
		{"Put", func() error {
			_, err := b.Put(ctx, "d/new", strings.NewReader(strings.Repeat("x", 100)), 100, backends.PutOptions{})
			return err
		}},
		{"Put on a stale version", func() error {
			_, err := b.Put(ctx, "f", strings.NewReader("y"), 1, backends.PutOptions{IfMatch: "not it"})
			return err
		}},
		{"Put to create", func() error {
			_, err := b.Put(ctx, "d/new2", strings.NewReader("y"), 1, backends.PutOptions{IfNoneMatch: true})
			return err
		}},
		{"Mkdir", func() error { return b.Mkdir(ctx, "d/newdir") }},
		{"Remove", func() error { return b.Remove(ctx, "d/g") }},
		{"Remove of a directory", func() error { return b.Remove(ctx, "d/sub") }},
		{"Rename", func() error { return b.Rename(ctx, "f", "d/moved", false) }},
		{"SetMeta", func() error { _, err := b.SetMeta(ctx, "d/g", backends.Meta{Mode: &mode}, ""); return err }},
	}
	for _, fl := range failures(f) {
		for _, method := range []string{"GET", "PUT", "POST"} {
			for _, c := range calls {
				setup()
				var hit atomic.Bool
				f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method != method {
						return false
					}
					hit.Store(true)
					fl.serve(w, r)
					return true
				})
				err := c.call()
				f.setBefore(nil)
				if !hit.Load() {
					continue
				}
				what := fmt.Sprintf("%s, %s at a %s", c.name, fl.name, method)
				if err == nil {
					if fl.name == "garbage for JSON" && method == "POST" {
						continue // the reply of a change is not read
					}
					t.Errorf("%s: no error", what)
					continue
				}
				t.Logf("%s: %v", what, err)
				if fl.kind != nil && !errors.Is(err, fl.kind) {
					t.Errorf("%s: %v, want %v", what, err, fl.kind)
				}
				checkNoCaps(t, f, what+": the error", err.Error())
				checkNoCaps(t, f, what+": the error (%+v)", fmt.Sprintf("%+v %#v", err, err))
			}
		}
	}
	checkNoCaps(t, f, "the log", logs.String())
	if !strings.Contains(logs.String(), "tahoe request") {
		t.Errorf("the log has no request in it: %q", logs.String()[:min(200, len(logs.String()))])
	}
}

// TestNodeDown: calls on a node that stopped answering fail with
// ErrUnavailable, saying so.
func TestNodeDown(t *testing.T) {
	f := newFakeNode(t)
	b := open(t, f, f.newDir(), io.Discard)
	f.srv.Close()
	_, err := b.Stat(t.Context(), "x")
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "is the Tahoe node running?") {
		t.Errorf("Stat on a node that is down: %v", err)
	}
	_, err = b.Put(t.Context(), "x", strings.NewReader("x"), 1, backends.PutOptions{})
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Put on a node that is down: %v", err)
	}
	checkNoCaps(t, f, "the error", err.Error())
}

// TestReadOnlyWithoutRequests: every change on a read-only cap fails with
// ErrReadOnly without a request.
func TestReadOnlyWithoutRequests(t *testing.T) {
	f := newFakeNode(t)
	rw := f.newDir()
	w := open(t, f, rw, io.Discard)
	if _, err := w.Put(t.Context(), "f", strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	b := open(t, f, f.readCap(rw), io.Discard)
	caps, _ := b.Capabilities(t.Context())
	if !caps.ReadOnly {
		t.Fatalf("a read-only cap gives a mount that is not read-only")
	}
	mode := os.FileMode(0o600)
	before := f.requests.Load()
	for name, err := range map[string]error{
		"Put": func() error {
			_, err := b.Put(t.Context(), "g", strings.NewReader("x"), 1, backends.PutOptions{})
			return err
		}(),
		"Mkdir":   b.Mkdir(t.Context(), "d"),
		"Remove":  b.Remove(t.Context(), "f"),
		"Rename":  b.Rename(t.Context(), "f", "g", true),
		"SetMeta": func() error { _, err := b.SetMeta(t.Context(), "f", backends.Meta{Mode: &mode}, ""); return err }(),
	} {
		if !errors.Is(err, backends.ErrReadOnly) {
			t.Errorf("%s on a read-only cap: %v, want ErrReadOnly", name, err)
		}
		checkNoCaps(t, f, name+": the error", err.Error())
	}
	if n := f.requests.Load() - before; n != 0 {
		t.Errorf("the refused changes sent %d requests", n)
	}
	if _, err := b.Stat(t.Context(), "f"); err != nil {
		t.Errorf("Stat on a read-only cap: %v", err)
	}
	if !strings.HasPrefix(b.String(), "tahoe:DIR2-RO#") || strings.Contains(b.String(), f.readCap(rw)) {
		t.Errorf("String() = %q", b.String())
	}
}

// TestReadOnlySubdirectory: a read-only directory linked into a writable
// tree refuses changes with ErrPermission.
func TestReadOnlySubdirectory(t *testing.T) {
	f := newFakeNode(t)
	root, other := f.newDir(), f.newDir()
	b := open(t, f, root, io.Discard)
	f.mu.Lock()
	f.nodes[root].children["ro"] = &fedge{node: f.nodes[other], meta: updateMeta(nil, nil)}
	f.mu.Unlock()
	// Linked by its read cap only: listings through root show no rw_uri.
	f.mu.Lock()
	ro := *f.nodes[other]
	ro.rw = ""
	f.nodes[root].children["ro"].node = &ro
	f.mu.Unlock()
	_, err := b.Put(t.Context(), "ro/x", strings.NewReader("x"), 1, backends.PutOptions{})
	if !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Put into a read-only directory: %v", err)
	}
	if err := b.Mkdir(t.Context(), "ro/d"); !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Mkdir in a read-only directory: %v", err)
	}
}

// TestTimeouts: a node that takes the body of an upload but never answers,
// or stops reading it, fails the upload within the time allowed.
func TestTimeouts(t *testing.T) {
	f := newFakeNode(t)
	var logs syncBuffer
	cfg := testConfig(f, f.newDir(), &logs)
	cfg.Timeout = 300 * time.Millisecond
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range []struct {
		name  string
		size  int
		serve func(w http.ResponseWriter, r *http.Request)
		words string
	}{
		{"no answer after the body", 100 << 10, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, "did not answer in the time allowed"},
		{"the body is not read", 64 << 20, func(w http.ResponseWriter, r *http.Request) {
			// The server notices a closed connection only once the body
			// is read: wait a while instead.
			time.Sleep(3 * time.Second)
		}, "stopped sending or receiving data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPut {
					return false
				}
				c.serve(w, r)
				return true
			})
			defer f.setBefore(nil)
			start := time.Now()
			data := strings.Repeat("z", c.size)
			_, err := b.Put(context.Background(), "big", strings.NewReader(data), int64(len(data)), backends.PutOptions{})
			took := time.Since(start)
			if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), c.words) {
				t.Errorf("Put: %v", err)
			}
			if limit := 3 * time.Second; took > limit {
				t.Errorf("Put took %v, more than %v", took, limit)
			}
			checkNoCaps(t, f, "the error", err.Error())
		})
	}
}
