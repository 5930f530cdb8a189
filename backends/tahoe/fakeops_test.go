package tahoe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// existing is humanize_exception's text for ExistingChildError.
const existing = "There was already a child by that name, and you asked me to not replace it."

// handle answers the request at the end of a walk (called with f.mu held).
func (at target) handle(f *fakeNode, r *http.Request, t string) reply {
	if at.err != nil {
		return *at.err
	}
	if at.n == nil { // PlaceHolderNodeHandler: a PUT to a new name
		return f.putChild(r, t, at)
	}
	switch {
	case at.n.kind == "dirnode" && r.Method == http.MethodGet:
		switch t {
		case "json":
			return f.jsonReply(f.nodeJSON(at.n, at.writable, nil, false))
		case "":
			return reply{code: 200, ctype: "text/html", body: "<html><body><h1>Directory</h1><table>…</table></body></html>"}
		}
		return text(400, "GET directory: bad t="+t)
	case at.n.kind == "dirnode" && r.Method == http.MethodPost:
		return f.postDir(r, t, at)
	case at.n.kind == "dirnode" && r.Method == http.MethodPut:
		if t == "mkdir" {
			return text(200, at.n.rw)
		}
		return text(400, "PUT to a directory")
	case r.Method == http.MethodDelete:
		return f.deleteChild(r, at)
	case at.n.kind == "filenode" && r.Method == http.MethodGet:
		switch t {
		case "json":
			var meta map[string]any
			if at.parent != nil {
				meta = at.parent.children[at.name].meta
			}
			return f.jsonReply(f.nodeJSON(at.n, at.writable, meta, false))
		case "":
			return download(r, at.n)
		}
		return text(400, "GET file: bad t="+t)
	case at.n.kind == "filenode" && r.Method == http.MethodPut:
		return f.putChild(r, t, at)
	}
	return text(501, "unsupported method")
}

// jsonReply renders a t=json answer.
func (f *fakeNode) jsonReply(v any) reply {
	raw, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		panic(err)
	}
	return text(200, string(raw)+"\n")
}

// nodeJSON is the [type, props] of n (directory.py _directory_json_metadata,
// filenode.py _file_json_metadata). In a listing a mutable file has no
// size (the node does not know it yet).
func (f *fakeNode) nodeJSON(n *fnode, writable bool, meta map[string]any, inListing bool) []any {
	props := map[string]any{"mutable": n.mutable}
	if n.ro != "" {
		props["ro_uri"] = n.ro
	}
	if writable && n.rw != "" {
		props["rw_uri"] = n.rw
	}
	if n.verify != "" {
		props["verify_uri"] = n.verify
	}
	if meta != nil {
		props["metadata"] = meta
	}
	if n.kind == "filenode" {
		props["format"] = "CHK"
		if n.mutable {
			props["format"] = "SDMF"
		}
		if !n.mutable || !inListing {
			props["size"] = len(n.data)
		}
		return []any{"filenode", props}
	}
	if !inListing {
		kids := map[string]any{}
		for name, e := range n.children {
			kids[name] = f.nodeJSON(e.node, writable && e.node.rw != "", e.meta, true)
		}
		props["children"] = kids
	}
	return []any{"dirnode", props}
}

// download is FileDownloader.render: one range (the first of several),
// 416 when it starts past the end, a header that does not parse ignored.
func download(r *http.Request, n *fnode) reply {
	size := int64(len(n.data))
	first, last := int64(0), size-1
	rep := reply{code: 200, ctype: "text/plain", hdr: map[string]string{"Accept-Ranges": "bytes"}}
	if h := r.Header.Get("Range"); h != "" {
		if a, z, ok := parseRange(h, size); ok {
			if a >= size {
				return text(416, "First beyond end of file")
			}
			first, last = max(0, a), min(size-1, z)
			rep.code = 206
			rep.hdr["Content-Range"] = fmt.Sprintf("bytes %d-%d/%d", first, last, size)
		}
	}
	rep.body = string(n.data[first : last+1])
	return rep
}

// parseRange is FileDownloader.parse_range_header: the first range of the
// set, or ok false when any does not parse (then the header is ignored).
func parseRange(h string, size int64) (first, last int64, ok bool) {
	units, set, found := strings.Cut(h, "=")
	if !found || units != "bytes" {
		return 0, 0, false
	}
	var ranges [][2]int64
	for _, rg := range strings.Split(set, ",") {
		a, z, found := strings.Cut(strings.TrimSpace(rg), "-")
		if !found {
			return 0, 0, false
		}
		var f, l int64
		var err error
		if a == "" {
			n, err := strconv.ParseInt(z, 10, 64)
			if err != nil {
				return 0, 0, false
			}
			f, l = size-n, size-1
		} else {
			if f, err = strconv.ParseInt(a, 10, 64); err != nil {
				return 0, 0, false
			}
			if z == "" {
				l = size - 1
			} else if l, err = strconv.ParseInt(z, 10, 64); err != nil {
				return 0, 0, false
			}
		}
		if l < f {
			return 0, 0, false
		}
		ranges = append(ranges, [2]int64{f, l})
	}
	return ranges[0][0], ranges[0][1], true
}

// putUnlinked is PUT /uri: an unlinked immutable file.
func (f *fakeNode) putUnlinked(r *http.Request) reply {
	if format, _ := arg(r, "format"); format != "" && strings.ToUpper(format) != "CHK" {
		return text(400, "the fake makes immutable files only")
	}
	if r.Header.Get("Content-Range") != "" {
		return text(501, "Content-Range in PUT not yet supported")
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return text(400, "short body")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return text(200, f.immutableLocked(data).ro)
}

// putChild is a PUT to a path: an upload linked at the name (or a mutable
// file overwritten in place).
func (f *fakeNode) putChild(r *http.Request, t string, at target) reply {
	replace, ok := parseReplace(arg(r, "replace"))
	if !ok {
		return text(400, "invalid replace= argument")
	}
	if t != "" {
		return text(400, "PUT to a file: bad t="+t)
	}
	if at.n != nil && replace == "false" {
		return text(409, existing)
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return text(400, "short body")
	}
	if at.n != nil && at.n.mutable {
		if !at.writable {
			return text(400, "PUT to a mutable file: replace or update requested with read-only cap")
		}
		at.n.data = data
		return text(200, at.n.rw)
	}
	if !at.parentW {
		return traceback(r, "allmydata.interfaces.NotWriteableError")
	}
	n := f.immutableLocked(data)
	if rep := f.addChild(r, at.parent, at.name, n, nil, false, replace); rep != nil {
		return *rep
	}
	code := 201
	if at.n != nil {
		code = 200
	}
	return text(code, n.ro)
}

// addChild is dirnode's Adder for one child (with given metadata, or nil
// to keep the old user keys), as one directory change. nil: done.
func (f *fakeNode) addChild(r *http.Request, d *fnode, name string, n *fnode, given map[string]any, metaGiven bool, replace string) *reply {
	return f.changeDir(r, func() *reply {
		name = norm.NFC.String(name)
		old, exists := d.children[name]
		if exists && replace == "false" {
			rep := text(409, existing)
			return &rep
		}
		if exists && replace == "only-files" && old.node.kind == "dirnode" {
			rep := text(409, existing)
			return &rep
		}
		var oldMeta map[string]any
		if exists {
			oldMeta = old.meta
		}
		if !metaGiven {
			given = nil
		}
		d.children[name] = &fedge{node: n, meta: updateMeta(oldMeta, given)}
		return nil
	})
}

// changeDir makes one change of a directory, with the injected
// collisions.
func (f *fakeNode) changeDir(r *http.Request, change func() *reply) *reply {
	before, after := f.inject()
	if before {
		rep := traceback(r, ucwe)
		return &rep
	}
	if rep := change(); rep != nil {
		return rep
	}
	if after {
		rep := traceback(r, ucwe)
		return &rep
	}
	return nil
}

// deleteChild is DELETE of a path: unlink from its parent.
func (f *fakeNode) deleteChild(r *http.Request, at target) reply {
	if at.parent == nil {
		return text(400, "cannot delete a node without a parent")
	}
	if !at.parentW {
		return traceback(r, "allmydata.interfaces.NotWriteableError")
	}
	gone := at.n
	if rep := f.changeDir(r, func() *reply { delete(at.parent.children, at.name); return nil }); rep != nil {
		return *rep
	}
	return text(200, capOf(gone))
}

func capOf(n *fnode) string {
	if n.rw != "" {
		return n.rw
	}
	return n.ro
}

// postDir answers the POSTs to a directory.
func (f *fakeNode) postDir(r *http.Request, t string, at target) reply {
	d := at.n
	switch t {
	case "mkdir":
		name, ok := arg(r, "name")
		if !ok || name == "" {
			return text(200, d.rw) // made by the walk
		}
		replace, ok := parseReplace(arg(r, "replace"))
		if !ok || replace == "only-files" {
			return text(400, "invalid boolean argument")
		}
		if !at.writable {
			return traceback(r, "allmydata.interfaces.NotWriteableError")
		}
		sub := f.newDirLocked()
		if rep := f.addChild(r, d, name, sub, map[string]any{}, false, replace); rep != nil {
			return *rep
		}
		return text(200, sub.rw)
	case "unlink", "delete":
		name, _ := arg(r, "name")
		if !at.writable {
			return traceback(r, "allmydata.interfaces.NotWriteableError")
		}
		name = norm.NFC.String(name)
		var rep *reply
		if _, ok := d.children[name]; !ok {
			r404 := text(404, "No such child: "+name)
			return r404
		}
		rep = f.changeDir(r, func() *reply { delete(d.children, name); return nil })
		if rep != nil {
			return *rep
		}
		return text(200, "thing unlinked")
	case "relink", "rename":
		return f.relink(r, t, at)
	case "set_children", "set-children":
		return f.setChildren(r, at)
	}
	return text(400, "POST to a directory with bad t="+t)
}

// pyStrip is Python's bytes.strip().
func pyStrip(s string) string { return strings.Trim(s, " \t\n\r\v\f") }

// relink is _POST_relink and dirnode.move_child_to: set_node in the new
// parent (metadata moves with the link), then delete here: two changes.
func (f *fakeNode) relink(r *http.Request, t string, at target) reply {
	replace, ok := parseReplace(arg(r, "replace"))
	if !ok {
		return text(400, "invalid replace= argument")
	}
	from, ok := arg(r, "from_name")
	if !ok {
		return text(400, "from_name= is required")
	}
	from = pyStrip(from)
	to, ok := arg(r, "to_name")
	if ok {
		to = pyStrip(to)
	} else {
		to = from
	}
	if strings.Contains(from, "/") || strings.Contains(to, "/") {
		return text(400, "from_name= may not contain a slash")
	}
	dst, dstW := at.n, at.writable
	if toDir, ok := arg(r, "to_dir"); ok && toDir != at.n.rw {
		if t == "rename" {
			return text(400, "to_dir= is not valid for rename")
		}
		parts := strings.Split(pyStrip(toDir), "/")
		root, ok := f.nodes[parts[0]]
		if !ok || root.kind != "dirnode" {
			return text(400, "to_dir is not a directory")
		}
		dst, dstW = root, writableCap(root, parts[0])
		for _, p := range parts[1:] {
			e, ok := dst.children[norm.NFC.String(p)]
			if !ok {
				return text(404, "No such child: "+p)
			}
			dst, dstW = e.node, dstW && e.node.rw != ""
		}
		if dst.kind != "dirnode" {
			return text(400, "to_dir is not a directory")
		}
	}
	if !at.writable || !dstW {
		return traceback(r, "allmydata.interfaces.NotWriteableError")
	}
	from, to = norm.NFC.String(from), norm.NFC.String(to)
	if dst == at.n && from == to {
		return text(200, "thing moved")
	}
	e, ok := at.n.children[from]
	if !ok {
		return text(404, "No such child: "+from)
	}
	user := map[string]any{}
	for k, v := range e.meta {
		user[k] = v
	}
	if rep := f.addChild(r, dst, to, e.node, user, true, replace); rep != nil {
		return *rep
	}
	if rep := f.changeDir(r, func() *reply { delete(at.n.children, from); return nil }); rep != nil {
		return *rep
	}
	return text(200, "thing moved")
}

// setChildren is _POST_set_children and dirnode.set_children: one change
// for the whole batch, which a clash rejects whole.
func (f *fakeNode) setChildren(r *http.Request, at target) reply {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" ||
		ct == "application/x-www-form-urlencoded" {
		f.violation("set_children with a form Content-Type %q", ct)
		return text(400, "a form, not JSON")
	}
	replace, ok := parseReplace(arg(r, "replace"))
	if !ok {
		return text(400, "invalid replace= argument")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return text(400, "short body")
	}
	var kids map[string][]json.RawMessage
	if err := json.Unmarshal(body, &kids); err != nil {
		return traceback(r, "json.decoder.JSONDecodeError: "+err.Error())
	}
	if !at.writable {
		return traceback(r, "builtins.AssertionError")
	}
	type entry struct {
		name      string
		node      *fnode
		meta      map[string]any
		metaGiven bool
	}
	var entries []entry
	for name, pair := range kids {
		if len(pair) != 2 {
			return traceback(r, "builtins.ValueError: too many values to unpack")
		}
		var props struct {
			RO       string          `json:"ro_uri"`
			RW       string          `json:"rw_uri"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal(pair[1], &props); err != nil {
			return traceback(r, "builtins.AttributeError")
		}
		var n *fnode
		if props.RW != "" {
			n = f.nodes[props.RW]
		} else if props.RO != "" {
			n = f.nodes[props.RO]
			if n != nil && n.rw == props.RO {
				return text(400, "MustBeReadonlyError: a cap passed to this operation for the child named '"+name+
					"', needed to be read-only but was not. The cap is being passed in a read slot (ro_uri), "+
					"or was retrieved from a read slot as an unknown cap.")
			}
		}
		if n == nil {
			return text(400, "the fake does not know that cap")
		}
		e := entry{name: name, node: n}
		if len(props.Metadata) > 0 && string(props.Metadata) != "null" {
			if err := json.Unmarshal(props.Metadata, &e.meta); err != nil {
				return traceback(r, "builtins.AssertionError")
			}
			e.metaGiven = true
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	rep := f.changeDir(r, func() *reply {
		for _, e := range entries {
			old, exists := at.n.children[norm.NFC.String(e.name)]
			if exists && (replace == "false" || replace == "only-files" && old.node.kind == "dirnode") {
				rep := text(409, existing)
				return &rep
			}
		}
		for _, e := range entries {
			name := norm.NFC.String(e.name)
			var oldMeta map[string]any
			if old, ok := at.n.children[name]; ok {
				oldMeta = old.meta
			}
			given := e.meta
			if !e.metaGiven {
				given = nil
			}
			at.n.children[name] = &fedge{node: e.node, meta: updateMeta(oldMeta, given)}
		}
		return nil
	})
	if rep != nil {
		return *rep
	}
	return text(200, "Okay so I did it.")
}

// bodyOf is the text of a reply body, for the tests.
func bodyOf(r io.Reader) string {
	var b bytes.Buffer
	_, _ = io.Copy(&b, r)
	return b.String()
}
