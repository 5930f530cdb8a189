package webdav

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// NS is the XML namespace of the dead properties cloudmount stores with files.
const NS = "urn:x-cloudmount:1"

// The multistatus types below decode only what cloudmount reads. Pointer
// fields tell "absent" from "empty".
type msMultistatus struct {
	Responses []msResponse `xml:"DAV: response"`
}

// Status fields are lists: a reply with two statuses in one place is read
// by the worst of them, never by whichever came last.
type msResponse struct {
	Hrefs     []string     `xml:"DAV: href"`
	Status    []string     `xml:"DAV: status"`
	Propstats []msPropstat `xml:"DAV: propstat"`
}

type msPropstat struct {
	Status []string `xml:"DAV: status"`
	Prop   msProp   `xml:"DAV: prop"`
}

type msResourceType struct {
	Collection *struct{} `xml:"DAV: collection"`
}

type msProp struct {
	ResourceType   *msResourceType `xml:"DAV: resourcetype"`
	ContentLength  *string         `xml:"DAV: getcontentlength"`
	LastModified   *string         `xml:"DAV: getlastmodified"`
	ETag           *string         `xml:"DAV: getetag"`
	QuotaAvailable *string         `xml:"DAV: quota-available-bytes"`
	QuotaUsed      *string         `xml:"DAV: quota-used-bytes"`
	MTime          *string         `xml:"urn:x-cloudmount:1 mtime"`
	Mode           *string         `xml:"urn:x-cloudmount:1 mode"`
	UID            *string         `xml:"urn:x-cloudmount:1 uid"`
	GID            *string         `xml:"urn:x-cloudmount:1 gid"`
	SHA256         *string         `xml:"urn:x-cloudmount:1 sha256"`
	Type           *string         `xml:"urn:x-cloudmount:1 type"`
	Stamp          *string         `xml:"urn:x-cloudmount:1 etag"`
	Probe          *string         `xml:"urn:x-cloudmount:1 probe"`
	Checksums      *msChecksums    `xml:"http://owncloud.org/ns checksums"`
	Permissions    *string         `xml:"http://owncloud.org/ns permissions"`
}

// resource is one <response> of a multistatus reply, reduced to what
// cloudmount uses. Only properties reported with a 2xx status are kept.
type resource struct {
	path      string // decoded URL path of the href, as the server wrote it
	href      string // the href as the server wrote it
	status    int    // response-level status, 0 when there is none or it does not read
	found     bool   // at least one property came back with a 2xx status
	failed    bool   // a property or the response came back with a status that is not 2xx or does not read
	isDir     bool
	size      int64
	modified  time.Time
	etag      string
	quotaFree *int64
	quotaUsed *int64
	meta      backends.Meta
	stamp     *string // cm:etag: the version the content-bound metadata belongs to
	probe     *string
	// ocSHA256 is the SHA-256 in oc:checksums. The server keeps that with
	// the content (Nextcloud clears it on an upload without OC-Checksum and
	// when its scanner sees the file change), so it needs no cm:etag stamp.
	ocSHA256 string
	// ocPerms is oc:permissions, nil where the server has none.
	ocPerms *string
}

// apply copies the properties of one successful propstat into res. Values
// that do not parse are treated as absent: a foreign client may have written
// garbage into our namespace, and that must not make a file unreadable.
func (res *resource) apply(p *msProp) {
	if p.ResourceType != nil && p.ResourceType.Collection != nil {
		res.isDir = true
	}
	if p.ContentLength != nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(*p.ContentLength), 10, 64); err == nil && n >= 0 {
			res.size = n
		}
	}
	if p.LastModified != nil {
		if t, err := http.ParseTime(strings.TrimSpace(*p.LastModified)); err == nil {
			res.modified = t
		}
	}
	if p.ETag != nil {
		res.etag = strings.TrimSpace(*p.ETag)
	}
	res.quotaFree = parseOptInt(p.QuotaAvailable, res.quotaFree)
	res.quotaUsed = parseOptInt(p.QuotaUsed, res.quotaUsed)
	decodeMeta(p, &res.meta)
	if p.Stamp != nil {
		v := strings.TrimSpace(*p.Stamp)
		res.stamp = &v
	}
	if p.Probe != nil {
		v := strings.TrimSpace(*p.Probe)
		res.probe = &v
	}
	if p.Checksums != nil {
		if s := p.Checksums.sha256(); s != "" {
			res.ocSHA256 = s
		}
	}
	if p.Permissions != nil {
		v := *p.Permissions
		res.ocPerms = &v
	}
}

func parseOptInt(s *string, old *int64) *int64 {
	if s == nil {
		return old
	}
	n, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
	if err != nil {
		return old
	}
	return &n
}

// parseStatusLine returns the code of "HTTP/1.1 200 OK", or 0: the second
// word (words split by XML white space) must be exactly three digits.
func parseStatusLine(s string) int {
	f := strings.FieldsFunc(s, isXMLSpace)
	if len(f) < 2 || len(f[1]) != 3 {
		return 0
	}
	n := 0
	for _, c := range []byte(f[1]) {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 {
		return 0
	}
	return n
}

// worstStatus reads a list of status lines: the first code that is not
// 2xx (0 for one that does not read), else the first code; 0 for none.
func worstStatus(lines []string) int {
	first := 0
	for i, l := range lines {
		code := parseStatusLine(l)
		if !is2xx(code) {
			return code
		}
		if i == 0 {
			first = code
		}
	}
	return first
}

func is2xx(code int) bool { return code >= 200 && code <= 299 }

// hrefPath decodes an href (an absolute URL or an absolute path,
// percent-encoded) into a plain URL path.
func hrefPath(href string) (string, error) {
	h := strings.TrimSpace(href)
	if h == "" {
		return "", fmt.Errorf("%w: empty href in multistatus", backends.ErrProtocol)
	}
	if u, err := url.Parse(h); err == nil {
		if u.Path == "" && u.Host != "" {
			return "/", nil
		}
		if u.Path != "" {
			return u.Path, nil
		}
	}
	// Not a valid URL (raw spaces or stray '%' from a sloppy server): strip a
	// scheme and host by hand and unescape what can be unescaped.
	if i := strings.Index(h, "://"); i >= 0 {
		rest := h[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "/", nil
		}
		h = rest[j:]
	}
	if p, err := url.PathUnescape(h); err == nil {
		return p, nil
	}
	return h, nil
}

// propfindBody asks for the live properties an Entry needs, our dead ones,
// and what ownCloud-style servers keep: checksums (oc:checksums) and the
// user's permissions (oc:permissions).
const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:cm="` + NS + `" xmlns:oc="` + OCNS + `"><D:prop>` +
	`<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>` +
	`<cm:mtime/><cm:mode/><cm:uid/><cm:gid/><cm:sha256/><cm:type/><cm:etag/>` +
	`<oc:checksums/><oc:permissions/></D:prop></D:propfind>`

// propfindTypeBody asks only for the resource type (emptiness checks).
const propfindTypeBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>`

// propfindQuotaBody asks for the RFC 4331 quota properties.
const propfindQuotaBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`

// propfindProbeBody asks for the probe's dead property and the live ones.
const propfindProbeBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:cm="` + NS + `" xmlns:oc="` + OCNS + `"><D:prop>` +
	`<D:getlastmodified/><D:getetag/><cm:probe/><oc:checksums/>` +
	`</D:prop></D:propfind>`

// proppatchBody builds a propertyupdate that sets the given cm: properties
// (name → value) and removes the names in remove.
func proppatchBody(set [][2]string, remove []string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<D:propertyupdate xmlns:D="DAV:" xmlns:cm="` + NS + `">`)
	if len(set) > 0 {
		b.WriteString(`<D:set><D:prop>`)
		for _, kv := range set {
			fmt.Fprintf(&b, "<cm:%s>", kv[0])
			_ = xml.EscapeText(&b, []byte(kv[1]))
			fmt.Fprintf(&b, "</cm:%s>", kv[0])
		}
		b.WriteString(`</D:prop></D:set>`)
	}
	if len(remove) > 0 {
		b.WriteString(`<D:remove><D:prop>`)
		for _, n := range remove {
			fmt.Fprintf(&b, "<cm:%s/>", n)
		}
		b.WriteString(`</D:prop></D:remove>`)
	}
	b.WriteString(`</D:propertyupdate>`)
	return b.String()
}
