package sftp

import "testing"

func TestParseSource(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		user string
		path string
		ok   bool
	}{
		{"sftp://alice@example.com:2222/srv/data", "example.com", 2222, "alice", "/srv/data", true},
		{"sftp://example.com/srv/data", "example.com", 0, "", "/srv/data", true},
		{"sftp://example.com", "example.com", 0, "", "", true},
		{"sftp://example.com/", "example.com", 0, "", "/", true},
		{"sftp://bob@example.com/~/backup", "example.com", 0, "bob", "backup", true},
		{"sftp://bob@example.com/~", "example.com", 0, "bob", "", true},
		{"sftp://example.com/a%20b/c%2Fd", "example.com", 0, "", "/a b/c/d", true},
		{"sftp://[::1]:2222/x", "::1", 2222, "", "/x", true},
		{"sftp://user@[fe80::1]/x", "fe80::1", 0, "user", "/x", true},
		{"sftp://u%40corp@host/x", "host", 0, "u@corp", "/x", true},
		{"sftp://user:secret@host/x", "", 0, "", "", false}, // no passwords in URLs
		{"sftp://host:99999/x", "", 0, "", "", false},
		{"sftp://host:/x", "", 0, "", "", false},
		{"sftp:///x", "", 0, "", "", false},
		{"sftp://host/x?q=1", "", 0, "", "", false},
		{"http://host/x", "", 0, "", "", false},

		{"alice@example.com:backup", "example.com", 0, "alice", "backup", true},
		{"example.com:/srv/data", "example.com", 0, "", "/srv/data", true},
		{"example.com:", "example.com", 0, "", "", true},
		{"myalias:dir/sub", "myalias", 0, "", "dir/sub", true},
		{"alice@[::1]:data", "::1", 0, "alice", "data", true},
		{"[2001:db8::1]:/srv", "2001:db8::1", 0, "", "/srv", true},
		{"user@corp@host:p", "host", 0, "user@corp", "p", true},
		{"host:path:with:colons", "host", 0, "", "path:with:colons", true},
		{"host:dir/a@b", "host", 0, "", "dir/a@b", true},
		{"example.com", "", 0, "", "", false},
		{"/local/path", "", 0, "", "", false},
		{"@host:x", "", 0, "", "", false},
		{":x", "", 0, "", "", false},
		{"[::1]x", "", 0, "", "", false},
		{"-oProxyCommand=x:y", "", 0, "", "", false},
		{"ho st:x", "", 0, "", "", false},
	}
	for _, tt := range tests {
		host, port, user, path, ok := ParseSource(tt.in)
		if ok != tt.ok || host != tt.host || port != tt.port || user != tt.user || path != tt.path {
			t.Errorf("ParseSource(%q) = %q, %d, %q, %q, %v; want %q, %d, %q, %q, %v",
				tt.in, host, port, user, path, ok, tt.host, tt.port, tt.user, tt.path, tt.ok)
		}
	}
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"sftp://a@b:22/c", "a@b:c", "[::1]:x", "sftp://[::1]/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, _, _, ok := ParseSource(s)
		if !ok {
			return
		}
		if !validHost(host) || port < 0 || port > 65535 {
			t.Fatalf("ParseSource(%q) accepted host %q port %d", s, host, port)
		}
	})
}
