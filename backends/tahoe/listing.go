package tahoe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/cloudmount/cloudmount/backends"
)

// node is one node of a ?t=json reply: the node asked for, or a child of a
// directory with its edge. Its caps are secrets, kept for the requests
// that need them and dropped with the node.
type node struct {
	kind    string // "dirnode", "filenode" or "unknown"
	mutable bool
	size    int64  // -1: not given (mutable files, directories)
	ro, rw  string // read and write caps ("" when not given)
	meta    json.RawMessage
}

// child is a named child of a listing.
type child struct {
	name string
	node
}

// listing is what GET ?t=json of a directory gives: the directory itself
// and those of its children that were kept.
type listing struct {
	self     node
	count    int // children in the directory, kept or not
	children []child
}

// UnmarshalJSON reads the [TYPE, PROPS] pair Tahoe gives for every node.
func (n *node) UnmarshalJSON(data []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(data, &pair); err != nil || len(pair) != 2 {
		return errors.New("a node is not a [type, properties] pair")
	}
	if err := json.Unmarshal(pair[0], &n.kind); err != nil {
		return errors.New("a node's type is not a string")
	}
	return n.props(pair[1])
}

// props reads the properties of a node.
func (n *node) props(data []byte) error {
	var p struct {
		Mutable  *bool           `json:"mutable"`
		Size     *json.Number    `json:"size"`
		RO       string          `json:"ro_uri"`
		RW       string          `json:"rw_uri"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("the properties of a node do not read: %v", err)
	}
	n.mutable = p.Mutable != nil && *p.Mutable
	n.size = -1
	if p.Size != nil {
		s, err := strconv.ParseInt(p.Size.String(), 10, 64)
		if err != nil || s < 0 {
			return errors.New("a node's size is not a count of bytes")
		}
		n.size = s
	}
	n.ro, n.rw = p.RO, p.RW
	if len(p.Metadata) > 0 && !bytes.Equal(p.Metadata, []byte("null")) {
		n.meta = p.Metadata
	}
	return nil
}

// decodeListing reads a ?t=json reply as it arrives: the node asked for
// and, for a directory, the children for which keep says yes (nil: all),
// counting the others. It fails with ErrProtocol on a reply that does not
// read or goes over maxEntries children or maxBytes.
func decodeListing(r io.Reader, maxBytes int64, maxEntries int, keep func(name string) bool) (listing, error) {
	var l listing
	src := &readErr{r: r}
	lr := &io.LimitedReader{R: src, N: maxBytes + 1}
	dec := json.NewDecoder(lr)
	fail := func(err error) (listing, error) {
		if src.err != nil {
			return listing{}, src.err // the network's failure, not the reply's
		}
		if lr.N <= 0 {
			return listing{}, backends.Describe(backends.ErrProtocol,
				"the listing is larger than %d bytes, the limit of one directory; cloudmount stopped reading it", maxBytes)
		}
		if errors.Is(err, backends.ErrProtocol) {
			return listing{}, err
		}
		return listing{}, fmt.Errorf("%w: the listing does not read: %v", backends.ErrProtocol, err)
	}
	if err := delim(dec, '['); err != nil {
		return fail(err)
	}
	if err := dec.Decode(&l.self.kind); err != nil {
		return fail(err)
	}
	if err := delim(dec, '{'); err != nil {
		return fail(err)
	}
	props := map[string]json.RawMessage{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		k, _ := key.(string)
		if k != "children" {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return fail(err)
			}
			props[k] = v
			continue
		}
		if err := decodeChildren(dec, &l, maxEntries, keep); err != nil {
			return fail(err)
		}
	}
	if err := delim(dec, '}'); err != nil {
		return fail(err)
	}
	if err := delim(dec, ']'); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(errors.New("more after the node"))
	}
	raw, _ := json.Marshal(props)
	if err := l.self.props(raw); err != nil {
		return fail(err)
	}
	return l, nil
}

// decodeChildren reads the children object of a directory.
func decodeChildren(dec *json.Decoder, l *listing, maxEntries int, keep func(string) bool) error {
	if err := delim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := tok.(string)
		if !ok {
			return errors.New("a child's name is not a string")
		}
		if l.count++; l.count > maxEntries {
			return backends.Describe(backends.ErrProtocol,
				"the directory has more than %d children, the limit of one listing; cloudmount stopped reading it", maxEntries)
		}
		if keep != nil && !keep(name) {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		c := child{name: name}
		if err := dec.Decode(&c.node); err != nil {
			return err
		}
		l.children = append(l.children, c)
	}
	return delim(dec, '}')
}

// readErr remembers the failure of a reader other than its end.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// delim reads the delimiter want.
func delim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q", rune(want))
	}
	return nil
}

// listDir lists the directory at p (relative to the root), keeping the
// children keep says yes to (nil: all). A file at p fails with ErrNotDir.
func (b *Backend) listDir(ctx context.Context, op, p string, keep func(string) bool) (listing, error) {
	return b.listPath(ctx, op, p, keep)
}

// listCap lists the directory at sub below cap (shown as p in messages).
func (b *Backend) listCap(ctx context.Context, op, p, cap, sub string, keep func(string) bool) (listing, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	r := &request{method: http.MethodGet, op: op, cap: cap, sub: sub, shown: p,
		query: map[string][]string{"t": {"json"}}}
	resp, err := b.do(ctx, r)
	if err != nil {
		return listing{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return listing{}, replyError(r, resp)
	}
	defer drain(resp)
	l, err := decodeListing(resp.Body, MaxListingBytes, MaxListingEntries, keep)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return listing{}, b.netError(r, cerr)
		}
		if !errors.Is(err, backends.ErrProtocol) {
			return listing{}, b.netError(r, err)
		}
		return listing{}, fmt.Errorf("%s %s: %w", op, display(p), err)
	}
	switch l.self.kind {
	case "dirnode":
		return l, nil
	case "filenode":
		return listing{}, opError(op, p, backends.ErrNotDir, "%s is a file", display(p))
	}
	return listing{}, opError(op, p, backends.ErrUnsupported, "%s is a node of a kind this node does not know", display(p))
}
