package mountutil

import (
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Host.Example/dav/", "https://host.example/dav"},
		{"https://host.example/dav", "https://host.example/dav"},
		{"HTTPS://host.example:443/dav//", "https://host.example/dav"},
		{"davs://host.example/dav/", "https://host.example/dav"},
		{"dav://host.example:80/", "http://host.example/"},
		{"http://host.example:8080", "http://host.example:8080/"},
		{"https://alice@host.example/a/b/?x=1#f", "https://host.example/a/b"},
		{"https://[::1]:8443/d/", "https://[::1]:8443/d"},
		{"https://[::1]/d/", "https://[::1]/d"},
		{"https://host/a%20b/", "https://host/a%20b"},
	}
	for _, tt := range tests {
		got, err := NormalizeURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "host/path", "https://", "https://u:secret@host:bad/"} {
		_, err := NormalizeURL(bad)
		if err == nil {
			t.Errorf("NormalizeURL(%q): no error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("NormalizeURL error repeats the password: %v", err)
		}
	}
}
