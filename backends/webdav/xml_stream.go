package webdav

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// Bounds of one multistatus reply. A reply is decoded as it arrives, one
// <response> at a time, so memory grows with the entries kept, never with
// what the server sends; a reply over a bound is an error (LimitError),
// never a truncated listing.
const (
	// DefaultMaxListingEntries is the most <response> elements one reply
	// may hold: a directory of that many entries (each costs about half a
	// kilobyte in memory while the listing is read). Config.MaxListingEntries
	// raises or lowers it.
	DefaultMaxListingEntries = 100_000
	// DefaultMaxListingBytes is the largest reply read, a few kilobytes per
	// entry allowed. Config.MaxListingBytes changes it.
	DefaultMaxListingBytes = 256 << 20
	// maxElementBytes bounds one <response> element, or anything else
	// between two of them (text, comments): no single piece of the reply
	// is held in memory whole beyond this.
	maxElementBytes = 1 << 20
)

// msLimits are the bounds a reply is read with.
type msLimits struct {
	entries int
	bytes   int64
	server  string // host:port, for messages; never credentials
}

// defaultLimits are the bounds of a reply read without a Backend (tests).
var defaultLimits = msLimits{entries: DefaultMaxListingEntries, bytes: DefaultMaxListingBytes, server: "the server"}

// LimitError is a reply that went over one of its bounds. It matches
// backends.ErrProtocol.
type LimitError struct {
	Server string // host:port
	What   string // "entries", "bytes", "bytes in one element"
	Limit  int64
}

// Error reads "the reply of host:8080 holds more than 100000 entries, the
// limit of one listing; cloudmount stopped reading it".
func (e *LimitError) Error() string {
	switch e.What {
	case "entries":
		return fmt.Sprintf("the reply of %s holds more than %d entries, the limit of one listing; "+
			"cloudmount stopped reading it", e.Server, e.Limit)
	case "element":
		return fmt.Sprintf("the reply of %s has an element of more than %d bytes, the limit of one entry; "+
			"cloudmount stopped reading it", e.Server, e.Limit)
	}
	return fmt.Sprintf("the reply of %s is larger than %d bytes, the limit of one listing; "+
		"cloudmount stopped reading it", e.Server, e.Limit)
}

// Unwrap makes a LimitError match backends.ErrProtocol.
func (e *LimitError) Unwrap() error { return backends.ErrProtocol }

// boundedReader hands a reply to the XML decoder byte by byte (it is an
// io.ByteReader, so the decoder reads no further ahead than it needs) and
// fails once the reply passes its cap, or the current element passes its
// window.
type boundedReader struct {
	r      *bufio.Reader
	n      int64 // bytes handed out
	max    int64
	window int64 // n may not pass this until the next checkpoint
	lim    msLimits
	err    *LimitError
}

func newBoundedReader(r io.Reader, lim msLimits) *boundedReader {
	br := &boundedReader{r: bufio.NewReader(r), max: lim.bytes, lim: lim}
	br.checkpoint()
	return br
}

// checkpoint opens a new window: the next element may be maxElementBytes.
func (br *boundedReader) checkpoint() { br.window = br.n + maxElementBytes }

func (br *boundedReader) room() error {
	switch {
	case br.n >= br.max:
		br.err = &LimitError{Server: br.lim.server, What: "bytes", Limit: br.max}
	case br.n >= br.window:
		br.err = &LimitError{Server: br.lim.server, What: "element", Limit: maxElementBytes}
	default:
		return nil
	}
	return br.err
}

// ReadByte implements io.ByteReader.
func (br *boundedReader) ReadByte() (byte, error) {
	if err := br.room(); err != nil {
		return 0, err
	}
	c, err := br.r.ReadByte()
	if err == nil {
		br.n++
	}
	return c, err
}

// Read implements io.Reader.
func (br *boundedReader) Read(p []byte) (int, error) {
	if err := br.room(); err != nil {
		return 0, err
	}
	if left := min(br.max, br.window) - br.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := br.r.Read(p)
	br.n += int64(n)
	return n, err
}

// parseMultistatus decodes a DAV:multistatus body with the default bounds.
func parseMultistatus(r io.Reader) ([]resource, error) {
	return decodeMultistatus(r, defaultLimits)
}

// decodeMultistatus decodes a DAV:multistatus body as it arrives, one
// <response> at a time. It fails with ErrProtocol when the body is not
// well-formed XML or is not a multistatus, and with a LimitError (also
// ErrProtocol) when it goes over lim.
func decodeMultistatus(r io.Reader, lim msLimits) ([]resource, error) {
	var out []resource
	err := walkMultistatus(r, lim, func(res *resource) error {
		out = append(out, *res)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkMultistatus calls fn with each <response> of a multistatus body, in
// order, as it is decoded.
func walkMultistatus(r io.Reader, lim msLimits, fn func(*resource) error) error {
	br := newBoundedReader(r, lim)
	dec := xml.NewDecoder(br)
	fail := func(err error) error {
		if br.err != nil {
			return br.err
		}
		return fmt.Errorf("%w: reading multistatus: %v", backends.ErrProtocol, err)
	}
	var root xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		br.checkpoint()
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	if root.Name.Space != "DAV:" || root.Name.Local != "multistatus" {
		return fmt.Errorf("%w: reply is <%s>, not a DAV:multistatus", backends.ErrProtocol, root.Name.Local)
	}
	count := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			// The decoder checks that it closes the root.
			return nil
		case xml.StartElement:
			if t.Name.Space != "DAV:" || t.Name.Local != "response" {
				if err := dec.Skip(); err != nil {
					return fail(err)
				}
				break
			}
			count++
			if count > lim.entries {
				return &LimitError{Server: lim.server, What: "entries", Limit: int64(lim.entries)}
			}
			var mr msResponse
			if err := dec.DecodeElement(&mr, &t); err != nil {
				return fail(err)
			}
			res, err := mr.resource()
			if err != nil {
				return err
			}
			if err := fn(&res); err != nil {
				return err
			}
		}
		br.checkpoint()
	}
}

// resource reduces one decoded <response>.
func (r *msResponse) resource() (resource, error) {
	if len(r.Hrefs) == 0 {
		return resource{}, fmt.Errorf("%w: multistatus response without href", backends.ErrProtocol)
	}
	p, err := hrefPath(r.Hrefs[0])
	if err != nil {
		return resource{}, err
	}
	res := resource{path: p, href: strings.TrimSpace(r.Hrefs[0]), size: -1}
	if len(r.Status) > 0 {
		res.status = worstStatus(r.Status)
		res.failed = !is2xx(res.status)
	}
	for i := range r.Propstats {
		ps := &r.Propstats[i]
		if !is2xx(worstStatus(ps.Status)) {
			res.failed = true
			continue
		}
		res.found = true
		res.apply(&ps.Prop)
	}
	return res, nil
}
