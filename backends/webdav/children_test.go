package webdav

import (
	"strings"
	"testing"
)

func TestChildOf(t *testing.T) {
	for _, c := range []struct {
		path, parent string
		name         string // "" when rejected
		reason       string // part of the reason
	}{
		{"/dav/a.txt", "/dav", "a.txt", ""},
		{"/dav/sub/", "/dav", "sub", ""},
		{"/a.txt", "/", "a.txt", ""},
		{"/dav/ctl\x1bname", "/dav", "ctl\x1bname", ""},
		{"/dav/..", "/dav", "", "the name .."},
		{"/dav/.", "/dav", "", "the name ."},
		{"/dav/../escape", "/dav", "", "not a direct child"},
		{"/dav/sub/deep.txt", "/dav", "", "not a direct child"},
		{"/elsewhere/x", "/dav", "", "not inside"},
		{"/davx/y", "/dav", "", "not inside"},
		{"/dav", "/dav", "", "not inside"},
		{"/dav/nul\x00", "/dav", "", "NUL"},
		{"/dav/" + strings.Repeat("n", 256), "/dav", "", "256 bytes"},
		{"/dav/" + strings.Repeat("n", 255), "/dav", strings.Repeat("n", 255), ""},
	} {
		name, reason := childOf(c.path, c.parent)
		if name != c.name || (c.reason == "") != (reason == "") || !strings.Contains(reason, c.reason) {
			t.Errorf("childOf(%q, %q) = %q, %q; want %q, %q", c.path, c.parent, name, reason, c.name, c.reason)
		}
	}
}

func TestHrefProblem(t *testing.T) {
	b := &Backend{scheme: "https", host: "cloud.example", hostPort: "cloud.example:443"}
	for _, c := range []struct {
		href   string
		reason string // part of the reason, "" for none
	}{
		{"/dav/a.txt", ""},
		{"https://cloud.example/dav/a.txt", ""},
		{"https://CLOUD.example:443/dav/a.txt", ""},
		{"http://cloud.example/dav/a.txt", "another server"},
		{"https://cloud.example:8443/dav/a.txt", "another server"},
		{"https://evil.example/dav/a.txt", "another server"},
		{"/dav/a%2Fb", "encoded slash"},
		{"/dav/a%2fb/", "encoded slash"},
		{"https://cloud.example/dav/a%2Fb", "encoded slash"},
		{"/dav%2Fx/a.txt", ""}, // an encoded slash above the entry is the server's business
	} {
		got := b.hrefProblem(c.href)
		if (c.reason == "") != (got == "") || !strings.Contains(got, c.reason) {
			t.Errorf("hrefProblem(%q) = %q, want %q", c.href, got, c.reason)
		}
	}
}
