package mountutil

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseNetrc(t *testing.T) {
	in := `machine host.example login alice password s3cret
machine other.example
	login bob
	password "with space \" quote"
	account ignored
macdef init
cd /pub
bin

default login anonymous password guest
`
	got, err := ParseNetrc(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []NetrcEntry{
		{Machine: "host.example", Login: "alice", Password: "s3cret"},
		{Machine: "other.example", Login: "bob", Password: `with space " quote`},
		{Login: "anonymous", Password: "guest"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if _, err := ParseNetrc(strings.NewReader("machine")); err == nil {
		t.Error("machine without a name: no error")
	}
	if _, err := ParseNetrc(strings.NewReader("machine h password")); err == nil {
		t.Error("password without a value: no error")
	}
}

func TestFindNetrc(t *testing.T) {
	entries := []NetrcEntry{
		{Machine: "host", Login: "alice", Password: "a"},
		{Machine: "host", Login: "bob", Password: "b"},
		{Machine: "nologin", Password: "n"},
		{Login: "anon", Password: "d"},
	}
	tests := []struct{ host, user, want string }{
		{"host", "alice", "a"},
		{"HOST", "bob", "b"},
		{"host", "", "a"},
		{"host", "carol", ""},
		{"nologin", "zed", "n"},
		{"elsewhere", "anon", "d"},
		{"elsewhere", "", "d"},
	}
	for _, tt := range tests {
		e, ok := FindNetrc(entries, tt.host, tt.user)
		if ok != (tt.want != "") || e.Password != tt.want {
			t.Errorf("FindNetrc(%q, %q) = %q, %v; want %q", tt.host, tt.user, e.Password, ok, tt.want)
		}
	}
}

func TestReadNetrcFilePermissions(t *testing.T) {
	p := writeFile(t, "netrc", "machine h login u password p\n", 0o644)
	if _, err := ReadNetrcFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("world-readable netrc: error = %v", err)
	}
	p = writeFile(t, "netrc", "machine h login u password p\n", 0o600)
	if got, err := ReadNetrcFile(p); err != nil || len(got) != 1 {
		t.Errorf("0600 netrc: %v, %v", got, err)
	}
}
