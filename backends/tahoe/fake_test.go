package tahoe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

// fakeNode is an in-process stand-in for a Tahoe-LAFS client node's web
// API, following docs/frontends/webapi.rst and the code of
// src/allmydata/web/{root,directory,filenode,common}.py and dirnode.py
// (1.19/1.20) for the endpoints the backend uses: traversal (with the
// creation of missing intermediate directories for PUT and POST), t=json
// listings, ranged downloads (416 past the end, a header that does not
// parse ignored), PUT /uri, t=mkdir, t=unlink, t=relink, t=set_children
// with update_metadata's rules, names in NFC, read-only caps (writes
// through them are 500 tracebacks naming NotWriteableError), and the
// error bodies of each kind (text, HTML error pages, {"error"} of
// t=json, tracebacks quoting the request's URL). Caps are random strings
// of the real shapes; CHK caps are convergent (the same bytes give the
// same cap).
type fakeNode struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte

	mu     sync.Mutex
	nodes  map[string]*fnode // by cap (every cap of a node, rw and ro)
	issued []string          // every cap ever made, for the leak tests

	// before, if set, sees every request first; it returns true when it
	// answered it (fault injection). Set it with setBefore.
	before atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	// uncoordinated makes the next directory changes fail with an
	// UncoordinatedWriteError traceback; applied: the change is made
	// before it fails (a publish that went through all the same).
	uncoordinated atomic.Int32
	applied       atomic.Bool

	vmu        sync.Mutex // protects violations
	violations []string   // requests the real node would misread
	requests   atomic.Int64
}

// fnode is a node of the fake grid: a directory, an immutable file or a
// mutable file.
type fnode struct {
	kind     string // "dirnode" or "filenode"
	mutable  bool
	rw, ro   string
	verify   string
	data     []byte            // files
	children map[string]*fedge // directories
}

// fedge is a child of a directory: the node and the edge's metadata.
type fedge struct {
	node *fnode
	meta map[string]any
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func lowerB32(b []byte) string { return strings.ToLower(b32.EncodeToString(b)) }

func randB32(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return lowerB32(b)
}

// newFakeNode starts a fake node; it stops with the test.
func newFakeNode(t *testing.T) *fakeNode {
	f := &fakeNode{t: t, nodes: map[string]*fnode{}, secret: make([]byte, 32)}
	_, _ = rand.Read(f.secret)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// setBefore sets (nil: clears) the function that sees every request
// first.
func (f *fakeNode) setBefore(fn func(w http.ResponseWriter, r *http.Request) bool) {
	if fn == nil {
		f.before.Store(nil)
		return
	}
	f.before.Store(&fn)
}

// url is the node.url of the fake.
func (f *fakeNode) url() string { return f.srv.URL + "/" }

// remember records the caps of n.
func (f *fakeNode) remember(n *fnode) *fnode {
	for _, c := range []string{n.rw, n.ro, n.verify} {
		if c != "" {
			f.nodes[c] = n
			f.issued = append(f.issued, c)
		}
	}
	return n
}

// newDirLocked makes an empty mutable directory.
func (f *fakeNode) newDirLocked() *fnode {
	key, fp := randB32(16), randB32(32)
	return f.remember(&fnode{kind: "dirnode", mutable: true,
		rw:       "URI:DIR2:" + key + ":" + fp,
		ro:       "URI:DIR2-RO:" + randB32(16) + ":" + fp,
		verify:   "URI:DIR2-Verifier:" + randB32(16) + ":" + fp,
		children: map[string]*fedge{}})
}

// newDir makes an empty directory and returns its write cap.
func (f *fakeNode) newDir() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.newDirLocked().rw
}

// readCap returns the read-only cap of the node with cap c.
func (f *fakeNode) readCap(c string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[c].ro
}

// immutableLocked stores data as an immutable file: LIT up to 55 bytes,
// else CHK with a key made from the data (convergent).
func (f *fakeNode) immutableLocked(data []byte) *fnode {
	if len(data) <= 55 {
		c := "URI:LIT:" + lowerB32(data)
		if n, ok := f.nodes[c]; ok {
			return n
		}
		return f.remember(&fnode{kind: "filenode", ro: c, data: data})
	}
	mac := func(tag string) []byte {
		h := hmac.New(sha256.New, f.secret)
		h.Write([]byte(tag))
		h.Write(data)
		return h.Sum(nil)
	}
	c := fmt.Sprintf("URI:CHK:%s:%s:2:3:%d", lowerB32(mac("key")[:16]), lowerB32(mac("ueb")), len(data))
	if n, ok := f.nodes[c]; ok {
		return n
	}
	return f.remember(&fnode{kind: "filenode", ro: c, data: data,
		verify: fmt.Sprintf("URI:CHK-Verifier:%s:%s:2:3:%d", lowerB32(mac("si")[:16]), lowerB32(mac("ueb")), len(data))})
}

// mutableLocked makes a mutable (SDMF) file.
func (f *fakeNode) mutableLocked(data []byte) *fnode {
	fp := randB32(32)
	return f.remember(&fnode{kind: "filenode", mutable: true, data: data,
		rw: "URI:SSK:" + randB32(16) + ":" + fp, ro: "URI:SSK-RO:" + randB32(16) + ":" + fp})
}

// addMutable links a new mutable file at name in the directory dirCap.
func (f *fakeNode) addMutable(dirCap, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.nodes[dirCap]
	d.children[norm.NFC.String(name)] = &fedge{node: f.mutableLocked(data), meta: updateMeta(nil, nil)}
}

// allCaps is every cap the fake made.
func (f *fakeNode) allCaps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

// violation records a request the real node would misread.
func (f *fakeNode) violation(format string, args ...any) {
	f.vmu.Lock()
	defer f.vmu.Unlock()
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

// checkClean fails the test if the backend sent a request the real node
// would misread.
func (f *fakeNode) checkClean(t *testing.T) {
	t.Helper()
	f.vmu.Lock()
	defer f.vmu.Unlock()
	for _, v := range f.violations {
		t.Errorf("a request the real node would misread: %s", v)
	}
}

// now is Tahoe's time: float seconds.
func now() float64 { return float64(time.Now().UnixMicro()) / 1e6 }

// updateMeta is dirnode.update_metadata: given metadata replaces every
// user key, Tahoe's own key stays; linkcrtime is set once, linkmotime
// every time.
func updateMeta(old, given map[string]any) map[string]any {
	md := map[string]any{}
	if given != nil {
		for k, v := range deepCopy(given) {
			if k != "tahoe" {
				md[k] = v
			}
		}
		if t, ok := old["tahoe"]; ok {
			md["tahoe"] = deepCopy(map[string]any{"t": t})["t"]
		}
	} else {
		md = deepCopy(old)
		if md == nil {
			md = map[string]any{}
		}
	}
	sys, _ := md["tahoe"].(map[string]any)
	if sys == nil {
		sys = map[string]any{}
	}
	if _, ok := sys["linkcrtime"]; !ok {
		if ct, ok := old["ctime"]; ok {
			sys["linkcrtime"] = ct
		} else {
			sys["linkcrtime"] = now()
		}
	}
	sys["linkmotime"] = now()
	md["tahoe"] = sys
	return md
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	raw, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// reply is an answer of the fake: status, content type and body.
type reply struct {
	code  int
	ctype string
	body  string
	hdr   map[string]string
}

func text(code int, s string) reply {
	return reply{code: code, ctype: "text/plain;charset=utf-8", body: s}
}

// errorPage is Twisted's ErrorPage, which traversal errors come as.
func errorPage(code int, msg string) reply {
	return reply{code: code, ctype: "text/html", body: fmt.Sprintf("\n<html>\n  <head><title>%d - Error</title></head>\n"+
		"  <body>\n    <h1>Error</h1>\n    <p>%s</p>\n  </body>\n</html>\n", code, html.EscapeString(msg))}
}

// traceback is the reply of an exception humanize_exception does not map:
// a 500 with the traceback, which quotes the request (and its caps).
func traceback(r *http.Request, exc string) reply {
	return text(500, "Traceback (most recent call last):\n"+
		"  File \"/usr/lib/python3/dist-packages/twisted/web/server.py\", line 233, in render\n"+
		fmt.Sprintf("    request %s %s\n", r.Method, r.URL.String())+
		"  File \"/usr/lib/python3/dist-packages/allmydata/mutable/filenode.py\", line 870, in modify\n"+
		"    raise e\n"+exc+"\n")
}

// ucwe is the last line of the traceback of a collision.
const ucwe = "allmydata.mutable.common.UncoordinatedWriteError: UncoordinatedWriteError()"

// serve answers one request.
func (f *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.Header.Get("Accept") != "text/plain" {
		f.violation("%s without Accept: text/plain", r.Method)
	}
	if before := f.before.Load(); before != nil && (*before)(w, r) {
		return
	}
	rep := f.route(r)
	for k, v := range rep.hdr {
		w.Header().Set(k, v)
	}
	if rep.ctype != "" {
		w.Header().Set("Content-Type", rep.ctype)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(rep.body)))
	w.WriteHeader(rep.code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(rep.body))
	}
}

// arg is get_arg over twisted.web.http.parse_qs, which splits the query
// at '&' and ';' and reads '+' as a blank.
func arg(r *http.Request, name string) (string, bool) {
	for _, item := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			continue
		}
		k, err1 := url.PathUnescape(strings.ReplaceAll(k, "+", " "))
		v, err2 := url.PathUnescape(strings.ReplaceAll(v, "+", " "))
		if err1 == nil && err2 == nil && k == name {
			return v, true
		}
	}
	return "", false
}

// parseReplace is parse_replace_arg: a boolean or "only-files".
func parseReplace(s string, present bool) (string, bool) {
	if !present {
		return "true", true
	}
	switch strings.ToLower(s) {
	case "only-files":
		return "only-files", true
	case "true", "t", "1", "on":
		return "true", true
	case "false", "f", "0", "off":
		return "false", true
	}
	return "", false
}

// route walks the path as Twisted and Tahoe do and hands the request to
// the node it names.
func (f *fakeNode) route(r *http.Request) reply {
	raw := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return text(400, "bad path")
		}
		segs[i] = u
	}
	if len(segs) == 0 || segs[0] != "uri" {
		return text(404, "No such resource")
	}
	t, _ := arg(r, "t")
	if len(segs) == 1 {
		if r.Method == http.MethodPut && t == "" {
			return f.putUnlinked(r)
		}
		return text(400, "/uri accepts only PUT, PUT?t=mkdir, POST?t=upload, and POST?t=mkdir")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := segs[1]
	n, ok := f.nodes[c]
	if !ok {
		if _, rest, isCap := capKind(c); isCap && strings.HasPrefix(c, "URI:DIR2") && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567:") == "" {
			return text(410, "UnrecoverableFileError: the directory (or mutable file) could not be retrieved, because there "+
				"were insufficient good shares. This might indicate that no servers were connected, insufficient servers were "+
				"connected, the URI was corrupt, or that shares have been lost due to server departure, hard drive failure, or "+
				"disk corruption. You should perform a filecheck on this object to learn more.")
		}
		return errorPage(400, fmt.Sprintf("'%s' is not a valid file- or directory- cap", c))
	}
	at := f.walk(r, t, n, writableCap(n, c), segs[2:])
	return at.handle(f, r, t)
}

// writableCap reports whether c is n's write cap.
func writableCap(n *fnode, c string) bool { return n.rw != "" && c == n.rw }

// target is where a walk ended: a node (with the parent and name it was
// reached by, if any), a name to create in parent (PUT), or an error.
type target struct {
	n        *fnode
	writable bool // reached by write caps all the way
	parent   *fnode
	parentW  bool
	name     string
	err      *reply
}

// createsIntermediate is should_create_intermediate_directories.
func createsIntermediate(r *http.Request, t string) bool {
	return (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
		t != "delete" && t != "rename" && t != "rename-form" && t != "check"
}

// walk follows segs from n (DirectoryNodeHandler.getChild and
// _got_child).
func (f *fakeNode) walk(r *http.Request, t string, n *fnode, writable bool, segs []string) target {
	at := target{n: n, writable: writable}
	if len(segs) == 1 && segs[0] == "" {
		return at // a trailing slash
	}
	for i, seg := range segs {
		terminal := i == len(segs)-1
		if seg == "" {
			rep := errorPage(400, "The webapi does not allow empty pathname components, i.e. a double slash")
			return target{err: &rep}
		}
		name := norm.NFC.String(seg)
		cur := at.n
		if cur.kind != "dirnode" {
			var rep reply
			if createsIntermediate(r, t) {
				rep = errorPage(409, fmt.Sprintf("Cannot create directory '%s', because its parent is a file, not a directory", name))
			} else {
				rep = errorPage(400, fmt.Sprintf("Files have no children named '%s'", name))
			}
			return target{err: &rep}
		}
		e, ok := cur.children[name]
		if !ok {
			switch {
			case !terminal && createsIntermediate(r, t),
				terminal && (r.Method == http.MethodPost || r.Method == http.MethodPut) && t == "mkdir":
				if !at.writable {
					rep := traceback(r, "allmydata.interfaces.NotWriteableError")
					return target{err: &rep}
				}
				if before, _ := f.inject(); before {
					rep := traceback(r, ucwe)
					return target{err: &rep}
				}
				d := f.newDirLocked()
				cur.children[name] = &fedge{node: d, meta: updateMeta(nil, nil)}
				e = cur.children[name]
			case terminal && r.Method == http.MethodPut && (t == "" || t == "uri"):
				return target{parent: cur, parentW: at.writable, name: name}
			default:
				rep := errorPage(404, "No such child: "+name)
				return target{err: &rep}
			}
		}
		at = target{n: e.node, writable: at.writable && e.node.rw != "", parent: cur, parentW: at.writable, name: name}
	}
	return at
}

// inject takes one of the injected UncoordinatedWriteErrors, if any is
// left: before, the change is to fail unmade; after, made and then
// reported as failed (a publish that went through all the same).
func (f *fakeNode) inject() (before, after bool) {
	for {
		n := f.uncoordinated.Load()
		if n <= 0 {
			return false, false
		}
		if f.uncoordinated.CompareAndSwap(n, n-1) {
			if f.applied.Load() {
				return false, true
			}
			return true, false
		}
	}
}
