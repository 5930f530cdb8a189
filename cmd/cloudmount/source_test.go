package main

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		in, url, user, kind string
	}{
		{"https://host/dav/", "https://host/dav/", "", "webdav"},
		{"https://host/dav", "https://host/dav/", "", "webdav"},
		{"https://host", "https://host/", "", "webdav"},
		{"HTTPS://Host:443/remote.php/webdav/", "https://host/remote.php/webdav/", "", "webdav"},
		{"http://host:8080/x/", "http://host:8080/x/", "", "webdav"},
		{"davs://alice@host/dav", "https://host/dav/", "alice", "webdav"},
		{"dav://host:80/", "http://host/", "", "webdav"},
		{"https://alice%40corp@host/d/", "https://host/d/", "alice@corp", "webdav"},
		{"https://host/a%20b/c%23d/", "https://host/a%20b/c%23d/", "", "webdav"},
		{"https://[::1]:8443/d/", "https://[::1]:8443/d/", "", "webdav"},
		{"sftp://alice@Host:2222/srv/data", "sftp://host:2222/srv/data/", "alice", "sftp"},
		{"sftp://host:22/srv/", "sftp://host/srv/", "", "sftp"},
		{"sftp://host/~/docs", "sftp://host/~/docs/", "", "sftp"},
		{"alice@host:docs", "sftp://host/~/docs/", "alice", "sftp"},
		{"host:", "sftp://host/~/", "", "sftp"},
		{"alice@host:/srv/a b", "sftp://host/srv/a%20b/", "alice", "sftp"},
		{"[::1]:x", "sftp://[::1]/~/x/", "", "sftp"},
	}
	for _, tt := range tests {
		s, err := parseSource(tt.in)
		if err != nil {
			t.Errorf("parseSource(%q): %v", tt.in, err)
			continue
		}
		if s.URL.String() != tt.url || s.User != tt.user || s.Kind.name != tt.kind {
			t.Errorf("parseSource(%q) = %s user %q kind %s; want %s user %q kind %s",
				tt.in, s.URL, s.User, s.Kind.name, tt.url, tt.user, tt.kind)
		}
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://alice:hunter2@host/dav/", "do not put passwords in the URL; use the secrets file"},
		{"https://alice:@host/dav/", "do not put passwords in the URL"},
		{"ftp://host/x", `unsupported source scheme "ftp": cloudmount mounts dav://, davs://, http://, https://, sftp://, tahoe:ALIAS URLs`},
		{"sftp://alice:hunter2@host/x", "do not put passwords in the URL"},
		{"sftp://alice@ho st/x", "not a valid sftp:// URL"},
		{"/some/dir", "SOURCE must be a URL such as https://host/path/"},
		{"https:///path", "has no host"},
		{"https://host/dav/?x=1", "a query (?...) or fragment (#...) is not allowed"},
		{"https://host/dav/#frag", "a query (?...) or fragment (#...) is not allowed"},
		{"https://alice:hunter2@host:x/", "SOURCE is not a valid URL; cloudmount mounts"},
		{"https://alice:hunter2@ho st/", "SOURCE is not a valid URL; cloudmount mounts"},
	}
	for _, tt := range tests {
		_, err := parseSource(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseSource(%q) error = %v, want %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseSource(%q) error repeats the password: %v", tt.in, err)
		}
	}
}

func TestFSName(t *testing.T) {
	u, _ := url.Parse("https://host/a,b/")
	if got := fsName(u, "alice"); got != "https://alice@host/a%2Cb/" {
		t.Errorf("fsName = %q", got)
	}
	if got := fsName(u, ""); got != "https://host/a%2Cb/" {
		t.Errorf("fsName = %q", got)
	}
}

func TestSFTPTarget(t *testing.T) {
	for _, tt := range []struct {
		source, host string
		port         int
		path         string
	}{
		{"sftp://host/", "host", 0, "/"},
		{"sftp://host/~/", "host", 0, ""},
		{"sftp://host/~/docs/", "host", 0, "docs"},
		{"sftp://host:2222/srv/a%20b/", "host", 2222, "/srv/a b"},
		{"sftp://[::1]:2222/x/", "::1", 2222, "/x"},
	} {
		host, port, path, ok := sftpTarget(tt.source)
		if !ok || host != tt.host || port != tt.port || path != tt.path {
			t.Errorf("sftpTarget(%q) = %q %d %q %v; want %q %d %q", tt.source, host, port, path, ok, tt.host, tt.port, tt.path)
		}
	}
}
