package webdav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudmount/cloudmount/backends"
)

// PROPPATCH replies captured from real servers.
const (
	apacheProppatchOK = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns1="urn:x-cloudmount:1" xmlns:ns0="DAV:">
<D:response>
<D:href>/dav/f</D:href>
<D:propstat>
<D:prop>
<ns1:mtime/>
<ns1:etag/>
<ns1:type/>
</D:prop>
<D:status>HTTP/1.1 200 OK</D:status>
</D:propstat>
</D:response>
</D:multistatus>`

	// One property refused (409), the others then not applied (424).
	apacheProppatchRefused = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns1="urn:x-cloudmount:1" xmlns:ns0="DAV:">
<D:response>
<D:href>/dav/f</D:href>
<D:propstat>
<D:prop><ns1:mtime/>
</D:prop>
<D:status>HTTP/1.1 424 (status)</D:status>
<D:responsedescription>
Attempted DAV:set operation could not be completed due to other errors.</D:responsedescription>
</D:propstat>
<D:propstat>
<D:prop><ns0:getetag/>
</D:prop>
<D:status>HTTP/1.1 409 (status)</D:status>
<D:responsedescription>
Property is read-only.</D:responsedescription>
</D:propstat>
</D:response>
</D:multistatus>`

	// rclone serve webdav keeps no dead properties.
	rcloneProppatch = `<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/f.txt</D:href><D:propstat><D:prop><mtime xmlns="urn:x-cloudmount:1"></mtime><etag xmlns="urn:x-cloudmount:1"></etag><type xmlns="urn:x-cloudmount:1"></type></D:prop><D:status>HTTP/1.1 403 Forbidden</D:status></D:propstat></D:response></D:multistatus>`

	// A response-level status instead of propstats.
	responseStatusOK = `<multistatus xmlns="DAV:"><response><href>/f</href><status>HTTP/1.1 200 OK</status></response></multistatus>`
)

func TestProppatchVerdict(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       error // nil, ErrUnsupported or ErrProtocol
	}{
		{"apache ok", apacheProppatchOK, nil},
		{"apache refused", apacheProppatchRefused, backends.ErrUnsupported},
		{"rclone", rcloneProppatch, backends.ErrUnsupported},
		{"response status", responseStatusOK, nil},
		{"response status 403", strings.Replace(responseStatusOK, "200 OK", "403 Forbidden", 1), backends.ErrUnsupported},
		{"not xml", "<html>busy</html>", backends.ErrProtocol},
		{"cut short", apacheProppatchOK[:len(apacheProppatchOK)/2], backends.ErrProtocol},
		{"confirms nothing", `<D:multistatus xmlns:D="DAV:"/>`, backends.ErrProtocol},
		{"response without status", `<D:multistatus xmlns:D="DAV:"><D:response><D:href>/f</D:href></D:response></D:multistatus>`, backends.ErrProtocol},
		{"propstat without status", `<D:multistatus xmlns:D="DAV:"><D:response><D:href>/f</D:href><D:propstat><D:prop/></D:propstat></D:response></D:multistatus>`, backends.ErrUnsupported},
		{"two statuses, the last OK", `<D:multistatus xmlns:D="DAV:"><D:response><D:href>/f</D:href><D:propstat><D:prop/>` +
			`<D:status>HTTP/1.1 403 Forbidden</D:status><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`, backends.ErrUnsupported},
		{"signed code", strings.Replace(apacheProppatchOK, " 200 ", " +200 ", 1), backends.ErrUnsupported},
		{"four digits", strings.Replace(apacheProppatchOK, " 200 ", " 0200 ", 1), backends.ErrUnsupported},
		{"no-break space", strings.Replace(apacheProppatchOK, "HTTP/1.1 200", "HTTP/1.1\u00a0200", 1), backends.ErrUnsupported},
		{"status on its own lines", strings.Replace(apacheProppatchOK, "HTTP/1.1 200 OK", "\n  HTTP/1.1 200 OK\n", 1), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := proppatchVerdict(strings.NewReader(c.body))
			switch {
			case c.want == nil && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

// statusCodeRE is the oracle's reading of a status line: a first word, then
// exactly three digits as the second word (RFC 9112 status-line).
var statusCodeRE = regexp.MustCompile(`^[ \t\r\n]*[^ \t\r\n]+[ \t\r\n]+([0-9]{3})(?:[ \t\r\n]|$)`)

func oracleStatusOK(line string) bool {
	m := statusCodeRE.FindStringSubmatch(line)
	return m != nil && m[1][0] == '2'
}

// oracleProppatch decides a PROPPATCH reply from the XML token stream on its
// own, independently of the struct decoding the backend uses: the reply must
// be a well-formed DAV:multistatus with at least one DAV:response, every
// response must have a non-blank first DAV:href and at least one status
// (its own or in a DAV:propstat), every DAV:propstat must have a status, and
// every status must be 2xx. The text of an element is its own character
// data, not that of elements inside it.
func oracleProppatch(data []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	if root.Name != (xml.Name{Space: "DAV:", Local: "multistatus"}) {
		return false
	}
	type frame struct {
		name xml.Name
		text strings.Builder
	}
	stack := []*frame{{name: root.Name}}
	dav := func(i int, local string) bool {
		return i >= 0 && i < len(stack) && stack[i].name == xml.Name{Space: "DAV:", Local: local}
	}
	responses := 0
	ok := true
	var hrefs, statuses, psStatuses int
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, &frame{name: tok.Name})
			if len(stack) == 2 && dav(1, "response") {
				responses++
				hrefs, statuses = 0, 0
			}
			if len(stack) == 3 && dav(1, "response") && dav(2, "propstat") {
				psStatuses = 0
			}
		case xml.CharData:
			stack[len(stack)-1].text.Write(tok)
		case xml.EndElement:
			top := stack[len(stack)-1]
			depth := len(stack)
			stack = stack[:len(stack)-1]
			if !dav(1, "response") && depth > 2 {
				continue
			}
			switch {
			case depth == 3 && top.name == xml.Name{Space: "DAV:", Local: "href"}:
				if hrefs == 0 && strings.TrimSpace(top.text.String()) == "" {
					ok = false
				}
				hrefs++
			case depth == 3 && top.name == xml.Name{Space: "DAV:", Local: "status"},
				depth == 4 && dav(2, "propstat") && top.name == xml.Name{Space: "DAV:", Local: "status"}:
				statuses++
				psStatuses++
				if !oracleStatusOK(top.text.String()) {
					ok = false
				}
			case depth == 3 && top.name == xml.Name{Space: "DAV:", Local: "propstat"}:
				if psStatuses == 0 {
					ok = false
				}
			case depth == 2 && top.name == xml.Name{Space: "DAV:", Local: "response"}:
				if hrefs == 0 || statuses == 0 {
					ok = false
				}
			}
		}
	}
	return ok && responses > 0
}

// proppatchSeeds are the replies above plus odd ones.
var proppatchSeeds = []string{
	apacheProppatchOK, apacheProppatchRefused, rcloneProppatch, responseStatusOK,
	`<D:multistatus xmlns:D="DAV:"><D:response><D:href>/f</D:href><D:propstat><D:prop/>` +
		`<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>`,
	"", "<a/>",
}

// FuzzProppatchReply: whatever a server sends back to a PROPPATCH, the
// verdict never panics, is nil, ErrUnsupported or ErrProtocol, agrees with
// the token-level oracle, and a reply cut short never counts as success.
func FuzzProppatchReply(f *testing.F) {
	for _, s := range proppatchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := proppatchVerdict(bytes.NewReader(data))
		if err != nil && !errors.Is(err, backends.ErrUnsupported) && !errors.Is(err, backends.ErrProtocol) {
			t.Fatalf("error %v is neither ErrUnsupported nor ErrProtocol", err)
		}
		if want := oracleProppatch(data); (err == nil) != want {
			t.Fatalf("verdict %v, oracle says success=%v", err, want)
		}
		if err != nil {
			return
		}
		// Where the root element ends: any cut before that is a reply
		// whose connection dropped.
		dec := xml.NewDecoder(bytes.NewReader(data))
		depth := 0
		for {
			tok, terr := dec.Token()
			if terr != nil {
				t.Fatalf("accepted, but the tokens end early: %v", terr)
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
			if depth == 0 {
				if _, ok := tok.(xml.EndElement); ok {
					break
				}
			}
		}
		end := int(dec.InputOffset())
		for _, cut := range []int{end - 1, end / 2, end * 3 / 4} {
			if cut <= 0 || cut >= end {
				continue
			}
			if proppatchVerdict(bytes.NewReader(data[:cut])) == nil {
				t.Fatalf("the first %d of %d bytes are accepted too", cut, end)
			}
		}
	})
}

// FuzzProppatchStatus builds well-formed replies from fuzzed status lines,
// namespace prefix and layout, where the right verdict is known.
func FuzzProppatchStatus(f *testing.F) {
	f.Add("D", "HTTP/1.1 200 OK", "HTTP/1.1 424 (status)", uint8(2))
	f.Add("", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK", uint8(6))
	f.Add("d", "HTTP/1.0 204 No Content", "", uint8(1))
	f.Add("X", "HTTP/1.1 403 Forbidden", "HTTP/1.1 200 OK", uint8(15))
	f.Fuzz(func(t *testing.T, prefix, s1, s2 string, layout uint8) {
		if !validXMLText(s1) || !validXMLText(s2) {
			t.Skip()
		}
		prefix = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return -1
		}, prefix)
		if len(prefix) > 8 || strings.HasPrefix(strings.ToLower(prefix), "xml") {
			prefix = "D"
		}
		el := func(name string) string {
			if prefix == "" {
				return name
			}
			return prefix + ":" + name
		}
		esc := func(s string) string {
			var b strings.Builder
			_ = xml.EscapeText(&b, []byte(s))
			return b.String()
		}
		var b strings.Builder
		var lines []string
		status := func(s string) {
			lines = append(lines, s)
			fmt.Fprintf(&b, "<%s>%s</%s>", el("status"), esc(s), el("status"))
		}
		propstat := func(prop, s string) {
			fmt.Fprintf(&b, "<%s><%s><cm:%s/></%s>", el("propstat"), el("prop"), prop, el("prop"))
			status(s)
			fmt.Fprintf(&b, "</%s>", el("propstat"))
		}
		xmlns := `xmlns="DAV:"`
		if prefix != "" {
			xmlns = `xmlns:` + prefix + `="DAV:"`
		}
		fmt.Fprintf(&b, `<?xml version="1.0" encoding="utf-8"?><%s %s xmlns:cm="%s">`, el("multistatus"), xmlns, NS)
		responses, confirmed := 0, true
		response := func(parts func()) {
			responses++
			n := len(lines)
			fmt.Fprintf(&b, "<%s><%s>/dav/f</%s>", el("response"), el("href"), el("href"))
			parts()
			fmt.Fprintf(&b, "</%s>", el("response"))
			if len(lines) == n {
				confirmed = false
			}
		}
		if layout&7 != 0 {
			response(func() {
				if layout&1 != 0 {
					status(s1)
				}
				if layout&2 != 0 {
					propstat("mtime", s1)
				}
				if layout&4 != 0 {
					propstat("sha256", s2)
				}
			})
		}
		if layout&8 != 0 {
			response(func() { propstat("etag", s2) })
		}
		fmt.Fprintf(&b, "</%s>", el("multistatus"))

		want := responses > 0 && confirmed
		for _, l := range lines {
			want = want && oracleStatusOK(l)
		}
		err := proppatchVerdict(strings.NewReader(b.String()))
		if (err == nil) != want {
			t.Fatalf("statuses %q: verdict %v, want success=%v\n%s", lines, err, want, b.String())
		}
	})
}

// validXMLText reports whether s is valid UTF-8 made of characters XML 1.0
// allows, so that it survives escaping unchanged.
func validXMLText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t', r == '\n', r == '\r',
			r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// FuzzOCChecksums: the value of oc:checksums gives a SHA-256 only when it
// names one, in lower-case hex.
func FuzzOCChecksums(f *testing.F) {
	f.Add("SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709 MD5:d41d8cd98f00b204e9800998ecf8427e ADLER32:00000001")
	f.Add("SHA256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
	f.Add("md5:x,sha-256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	f.Fuzz(func(t *testing.T, list string) {
		got := ocSHA256(list)
		if got == "" {
			return
		}
		if len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
			t.Fatalf("ocSHA256(%q) = %q: not 64 lower-case hex digits", list, got)
		}
		low := strings.ToLower(list)
		if !strings.Contains(low, "sha256:"+got) && !strings.Contains(low, "sha-256:"+got) {
			t.Fatalf("ocSHA256(%q) = %q, which the list does not name", list, got)
		}
	})
}
