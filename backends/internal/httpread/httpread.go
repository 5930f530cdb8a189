// Package httpread holds what the HTTP backends (WebDAV, Tahoe-LAFS) share
// to address and read a file: the escaping of a path segment, the parser of
// a reply's Content-Range and a reader that holds a body to the length its
// headers announced.
package httpread

import (
	"io"
	"strconv"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// ParseContentRange reads "bytes 10-19/100". With unknownTotal, a total of
// "*" reads as -1; without it, "*" does not read. It checks only that first
// and last are not negative and that total is not below -1: how the three
// must fit together is left to the caller.
func ParseContentRange(h string, unknownTotal bool) (first, last, total int64, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	rng, tot, ok := strings.Cut(strings.TrimSpace(rest), "/")
	if !ok {
		return 0, 0, 0, false
	}
	a, z, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	last, err2 = strconv.ParseInt(strings.TrimSpace(z), 10, 64)
	total = -1
	if t := strings.TrimSpace(tot); t != "*" || !unknownTotal {
		total, err3 = strconv.ParseInt(t, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < 0 || total < -1 {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// ExactReader passes on a body that must be a known number of bytes long
// (a negative length: unknown, passed on as it is), failing with
// ErrProtocol when it ends before or runs past that. Its errors are sticky.
type ExactReader struct {
	r    io.Reader
	left int64
	what string
	err  error // sticky

	brokenKind error  // what io.ErrUnexpectedEOF becomes; nil: passed on
	brokenWhy  string // why such a body broke off, for the message
}

// NewExactReader reads r, which must be left bytes long (left < 0:
// unknown); what names the reply in errors.
func NewExactReader(r io.Reader, left int64, what string) *ExactReader {
	return &ExactReader{r: r, left: left, what: what}
}

// BrokenOff makes a body that breaks off (io.ErrUnexpectedEOF) before its
// length fail with kind, saying why; without it that error is passed on.
func (e *ExactReader) BrokenOff(kind error, why string) *ExactReader {
	e.brokenKind, e.brokenWhy = kind, why
	return e
}

// Read reads from the body, holding it to its length.
func (e *ExactReader) Read(p []byte) (int, error) {
	switch {
	case e.err != nil:
		return 0, e.err
	case e.left < 0:
		return e.r.Read(p)
	case e.left == 0:
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		if n > 0 {
			e.err = backends.Describe(backends.ErrProtocol, "%s: the body goes on past its length", e.what)
			return 0, e.err
		}
		return 0, err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			e.err = backends.Describe(backends.ErrProtocol, "%s: the body ended %d bytes short", e.what, e.left)
			return n, e.err
		}
		err = nil // the next Read makes sure it ends here
	}
	if err == io.ErrUnexpectedEOF && e.left > 0 && e.brokenKind != nil {
		e.err = backends.Describe(e.brokenKind, "%s: the body ended %d bytes short (%s)", e.what, e.left, e.brokenWhy)
		return n, e.err
	}
	return n, err
}

// EscapeSegment percent-encodes everything in a path segment but the RFC
// 3986 unreserved characters, which every server decodes the same way (a
// Tahoe cap's ':' included).
func EscapeSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
