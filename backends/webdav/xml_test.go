package webdav

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Replies captured from real servers (trimmed).
const (
	apacheReply = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns1="urn:x-cloudmount:1" xmlns:ns0="DAV:">
<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">
<D:href>/dav/a%20b/</D:href>
<D:propstat><D:prop>
<lp1:resourcetype><D:collection/></lp1:resourcetype>
<lp1:getlastmodified>Mon, 23 Nov 2026 19:00:01 GMT</lp1:getlastmodified>
<lp1:getetag>"1000-660f633731eff"</lp1:getetag>
</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><lp1:getcontentlength/><ns1:mtime/></D:prop>
<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
<D:response xmlns:lp1="DAV:">
<D:href>/dav/a%20b/caf%C3%A9%20%231%3F.txt</D:href>
<D:propstat><D:prop>
<lp1:resourcetype/>
<lp1:getcontentlength>1321</lp1:getcontentlength>
<lp1:getlastmodified>Mon, 23 Nov 2026 19:01:02 GMT</lp1:getlastmodified>
<lp1:getetag>W/"529-660f638afe15f"</lp1:getetag>
<ns1:mtime>1700000000123456789</ns1:mtime>
<ns1:mode>644</ns1:mode>
<ns1:uid>1000</ns1:uid>
<ns1:gid>100</ns1:gid>
<ns1:sha256>E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855</ns1:sha256>
<ns1:type>symlink</ns1:type>
<ns1:etag>"529-660f638afe15f"</ns1:etag>
</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
</D:multistatus>`

	rcloneReply = `<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/</D:href><D:propstat><D:prop><D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype><D:getlastmodified>Mon, 23 Nov 2026 19:00:23 GMT</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/f1</D:href><D:propstat><D:prop><D:resourcetype></D:resourcetype><D:getetag>"18eac1be930ccb62529"</D:getetag><D:getcontentlength>1321</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat><D:propstat><D:prop><probe xmlns="urn:x-cloudmount:1"></probe></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response></D:multistatus>`

	// Absolute-URL hrefs, default namespace, a response-level status and
	// garbage in our namespace (written by someone else).
	oddReply = `<multistatus xmlns="DAV:" xmlns:c="urn:x-cloudmount:1">
<response><href>https://host.example:8443/remote.php/webdav/dir/</href>
<propstat><prop><resourcetype><collection/></resourcetype><quota-available-bytes>1000</quota-available-bytes><quota-used-bytes>24</quota-used-bytes></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>https://host.example:8443/remote.php/webdav/dir/gone</href><status>HTTP/1.1 404 Not Found</status></response>
<response><href>  /remote.php/webdav/dir/bad values  </href>
<propstat><prop><getcontentlength>-5</getcontentlength><c:mtime>soon</c:mtime><c:mode>999</c:mode><c:uid>-1</c:uid><c:sha256>xyz</c:sha256><c:type>door</c:type><getlastmodified>yesterday</getlastmodified></prop><status>HTTP/1.1 200 OK</status></propstat></response>
</multistatus>`
)

func TestParseMultistatus(t *testing.T) {
	res, err := parseMultistatus(strings.NewReader(apacheReply))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d responses", len(res))
	}
	dir, f := res[0], res[1]
	if dir.path != "/dav/a b/" || !dir.isDir || !dir.found || !dir.failed || dir.etag != `"1000-660f633731eff"` {
		t.Errorf("dir: %+v", dir)
	}
	if f.path != "/dav/a b/café #1?.txt" || f.isDir || f.size != 1321 || f.etag != `W/"529-660f638afe15f"` {
		t.Errorf("file: %+v", f)
	}
	if want := time.Date(2026, 11, 23, 19, 1, 2, 0, time.UTC); !f.modified.Equal(want) {
		t.Errorf("modified %v", f.modified)
	}
	m := f.meta
	if m.MTime == nil || m.MTime.UnixNano() != 1700000000123456789 || m.Mode == nil || *m.Mode != 0o644 ||
		m.UID == nil || *m.UID != 1000 || m.GID == nil || *m.GID != 100 ||
		m.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" || m.Type != "symlink" {
		t.Errorf("meta: %+v", m)
	}
	e := (&Backend{}).entry(&f, "café #1?.txt")
	if !e.ModTime.Equal(*m.MTime) || e.Version != opaqueTag(f.etag) || e.Size != 1321 {
		t.Errorf("entry %+v: ModTime must be the stored mtime", e)
	}
	// The same properties on a version they were not written for: another
	// client overwrote the file, and the server kept our dead properties.
	other := res[1]
	other.meta, other.etag = m, `"52a-660f638afe160"`
	if e := (&Backend{}).entry(&other, "x"); e.Meta.MTime != nil || e.Meta.SHA256 != "" || e.Meta.Type != "" ||
		!e.ModTime.Equal(f.modified) || e.Meta.Mode == nil || *e.Meta.Mode != 0o644 {
		t.Errorf("stale properties must give way to the server's mtime, and keep mode and owner: %+v", e)
	}

	res, err = parseMultistatus(strings.NewReader(rcloneReply))
	if err != nil || len(res) != 2 || res[0].path != "/" || !res[0].isDir || res[1].path != "/f1" || res[1].size != 1321 || res[1].probe != nil {
		t.Errorf("rclone: %+v, %v", res, err)
	}

	res, err = parseMultistatus(strings.NewReader(oddReply))
	if err != nil || len(res) != 3 {
		t.Fatalf("odd: %+v, %v", res, err)
	}
	if res[0].path != "/remote.php/webdav/dir/" || res[0].quotaFree == nil || *res[0].quotaFree != 1000 || *res[0].quotaUsed != 24 {
		t.Errorf("absolute href / quota: %+v", res[0])
	}
	if res[1].found || res[1].status != 404 {
		t.Errorf("response-level status: %+v", res[1])
	}
	bad := res[2]
	if bad.path != "/remote.php/webdav/dir/bad values" || bad.size != -1 || !bad.modified.IsZero() || !bad.meta.IsZero() {
		t.Errorf("garbage values must read as absent: %+v", bad)
	}
}

func TestParseMultistatusErrors(t *testing.T) {
	for _, body := range []string{
		"",
		"<html><body>hello</body></html>",
		`<D:multistatus xmlns:D="DAV:"><D:response>`,
		`<D:multistatus xmlns:D="DAV:"><D:response><D:propstat/></D:response></D:multistatus>`,
		`<multistatus><response><href>/x</href></response></multistatus>`, // no DAV: namespace
	} {
		if _, err := parseMultistatus(strings.NewReader(body)); !errors.Is(err, backends.ErrProtocol) {
			t.Errorf("%q: %v, want ErrProtocol", body, err)
		}
	}
}

func TestHrefPath(t *testing.T) {
	for _, c := range []struct{ href, want string }{
		{"/dav/a%20b/", "/dav/a b/"},
		{"http://h:1/dav/x%23y%3Fz", "/dav/x#y?z"},
		{"https://h", "/"},
		{"/dav/100%25", "/dav/100%"},
		{"/dav/raw space/ü", "/dav/raw space/ü"},
		{"/dav/bad%zzescape", "/dav/bad%zzescape"},
		{"http://h/dav/bad%zz", "/dav/bad%zz"},
		{"/dav/a+b&c=d", "/dav/a+b&c=d"},
		{"/dav/%E6%97%A5%E6%9C%AC", "/dav/日本"},
	} {
		got, err := hrefPath(c.href)
		if err != nil || got != c.want {
			t.Errorf("hrefPath(%q) = %q, %v; want %q", c.href, got, err, c.want)
		}
	}
}

func TestEscapePath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a/b.txt", "a/b.txt"},
		{"a b/c#d?e", "a%20b/c%23d%3Fe"},
		{"100%", "100%25"},
		{`it's "x" & y+z`, "it%27s%20%22x%22%20%26%20y%2Bz"},
		{"ü", "%C3%BC"},
		{"~-._", "~-._"},
	} {
		if got := escapePath(c.in); got != c.want {
			t.Errorf("escapePath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"/", ""}, {"a/", "a"}, {"/a//b/", "a/b"}, {"a/../b", "b"}, {"../../x", "x"},
	} {
		if got := cleanPath(c.in); got != c.want {
			t.Errorf("cleanPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestProppatchBody(t *testing.T) {
	mt := time.Unix(0, 42)
	body := proppatchBody(encodeMeta(backends.Meta{MTime: &mt, SHA256: "AB"}), []string{"type"})
	for _, want := range []string{`<cm:mtime>42</cm:mtime>`, `<cm:sha256>ab</cm:sha256>`, `<D:remove><D:prop><cm:type/>`, `xmlns:cm="urn:x-cloudmount:1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
}

// FuzzParseMultistatus: the parser of server replies never panics, and what
// it accepts is self-consistent. Seeds: the replies above and
// testdata/fuzz/FuzzParseMultistatus.
func FuzzParseMultistatus(f *testing.F) {
	for _, s := range []string{apacheReply, rcloneReply, oddReply, "", "<a/>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Tight bounds: going over one is an error like any other.
		small := msLimits{entries: 3, bytes: 4096, server: "fuzz"}
		if _, err := decodeMultistatus(bytes.NewReader(data), small); err != nil && !errors.Is(err, backends.ErrProtocol) {
			t.Fatalf("bounded: error %v is not ErrProtocol", err)
		}
		res, err := parseMultistatus(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, backends.ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		for _, r := range res {
			if r.path == "" {
				t.Fatalf("empty path accepted")
			}
			if r.size < -1 {
				t.Fatalf("size %d", r.size)
			}
			if r.meta.Mode != nil && *r.meta.Mode > 0o7777 {
				t.Fatalf("mode %o", *r.meta.Mode)
			}
			if r.meta.Type != "" && !specialTypes[r.meta.Type] {
				t.Fatalf("type %q", r.meta.Type)
			}
			_ = (&Backend{}).entry(&r, lastSegment(r.path))
		}
	})
}

// TestFuzzCorpusPresent keeps the checked-in seed corpus from going missing.
func TestFuzzCorpusPresent(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseMultistatus", "*"))
	if len(files) == 0 {
		t.Fatal("no seed corpus in testdata/fuzz/FuzzParseMultistatus")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(data, []byte("go test fuzz v1\n")) {
			t.Errorf("%s: not a fuzz corpus file (%v)", f, err)
		}
	}
}
