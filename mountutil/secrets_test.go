package mountutil

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFile writes a test file with the given mode.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func TestParseSecrets(t *testing.T) {
	in := "# cloudmount secrets\n" +
		"\n" +
		"https://host/dav/ alice s3cret\r\n" +
		"   # indented comment\n" +
		"davs://other:8443/x bob  pass with spaces # and hash  \n" +
		"\thttp://h/\tcarol\tp\n" +
		"/home/dave/my\\040cloud/ dave dpw\n"
	got, err := ParseSecrets(strings.NewReader(in), "secrets")
	if err != nil {
		t.Fatal(err)
	}
	want := []Secret{
		{URL: "https://host/dav/", User: "alice", Password: "s3cret", Line: 3},
		{URL: "davs://other:8443/x", User: "bob", Password: "pass with spaces # and hash", Line: 5},
		{URL: "http://h/", User: "carol", Password: "p", Line: 6},
		{Mountpoint: "/home/dave/my cloud", User: "dave", Password: "dpw", Line: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestParseSecretsErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://host/ alice\n", "f line 1: want \"URL user password\" or \"MOUNTPOINT user password\""},
		{"# c\nhttps://host/\n", "f line 2: want"},
		{"host/dav alice topsecret\n", "f line 1: not a valid URL"},
	}
	for _, tt := range tests {
		_, err := ParseSecrets(strings.NewReader(tt.in), "f")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSecrets(%q) error = %v, want %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

func TestFindSecret(t *testing.T) {
	secrets := []Secret{
		{URL: "https://host/dav/", User: "alice", Password: "a"},
		{URL: "https://host/dav", User: "bob", Password: "b"},
		{URL: "https://HOST:443/other/", User: "alice", Password: "o"},
		{URL: "dav://plain/", User: "carol", Password: "c"},
	}
	tests := []struct {
		source, user string
		want         string // password, "" for no match
	}{
		{"https://host/dav/", "alice", "a"},
		{"https://host/dav", "alice", "a"},
		{"https://host/dav/", "bob", "b"},
		{"https://host/dav/", "", "a"},
		{"davs://host/dav/", "bob", "b"},
		{"https://host/other", "alice", "o"},
		{"https://host:8443/dav/", "alice", ""},
		{"https://host/dav/sub/", "alice", ""},
		{"http://plain:80", "carol", "c"},
		{"https://host/dav/", "mallory", ""},
	}
	for _, tt := range tests {
		s, ok := FindSecret(secrets, tt.source, "", tt.user)
		if ok != (tt.want != "") || s.Password != tt.want {
			t.Errorf("FindSecret(%q, %q) = %q, %v; want %q", tt.source, tt.user, s.Password, ok, tt.want)
		}
	}
}

func TestFindSecretByMountpoint(t *testing.T) {
	secrets := []Secret{
		{Mountpoint: "/home/a/cloud", User: "alice", Password: "by-path"},
		{URL: "https://host/dav/", User: "alice", Password: "by-url"},
		{Mountpoint: "/home/a/other", User: "bob", Password: "bob"},
	}
	tests := []struct {
		source, mnt, user string
		want              string
	}{
		{"https://host/dav/", "/home/a/cloud", "alice", "by-path"},
		{"https://host/dav/", "/home/a/cloud/", "", "by-path"},
		{"https://host/dav/", "/home/a/x/../cloud", "alice", "by-path"},
		{"https://host/dav/", "/home/a/elsewhere", "alice", "by-url"},
		{"https://host/dav/", "", "alice", "by-url"},
		{"https://other/", "/home/a/other", "", "bob"},
		{"https://other/", "/home/a/other", "alice", ""},
		{"not a url", "/home/a/cloud", "alice", "by-path"},
	}
	for _, tt := range tests {
		s, ok := FindSecret(secrets, tt.source, tt.mnt, tt.user)
		if ok != (tt.want != "") || s.Password != tt.want {
			t.Errorf("FindSecret(%q, %q, %q) = %q, %v; want %q", tt.source, tt.mnt, tt.user, s.Password, ok, tt.want)
		}
	}
}

func TestReadSecretsFilePermissions(t *testing.T) {
	content := "https://host/ alice pw\n"
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		p := writeFile(t, "secrets", content, mode)
		_, err := ReadSecretsFile(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) || !strings.Contains(err.Error(), p) {
			t.Errorf("mode %04o: error = %v, want a refusal naming the file and chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := writeFile(t, "secrets", content, mode)
		got, err := ReadSecretsFile(p)
		if err != nil || len(got) != 1 {
			t.Errorf("mode %04o: %v, %v", mode, got, err)
		}
	}
	got, err := ReadSecretsFile(filepath.Join(t.TempDir(), "missing"))
	if got != nil || err != nil {
		t.Errorf("missing file: %v, %v; want nothing", got, err)
	}
	if _, err := ReadSecretsFile(t.TempDir()); err == nil {
		t.Error("a directory was accepted as secrets file")
	}
}

// FuzzParseSecrets checks that any secrets file parses without panicking,
// that what it returns is well formed, that writing it back parses to the
// same, and that errors never repeat a line.
func FuzzParseSecrets(f *testing.F) {
	f.Add("https://host/dav/ alice s3cret\n# c\n\n")
	f.Add("davs://h:1/x bob pass word\r\n")
	f.Add("https://host/\n")
	f.Add("\x00 \x00 \x00")
	f.Add("/home/a/my\\040cloud a pw\n/x\\134\\777 b p\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseSecrets(strings.NewReader(in), "f")
		if err != nil {
			checkNoPasswordInError(t, in, err)
			return
		}
		var b strings.Builder
		for _, s := range got {
			if (s.URL == "") == (s.Mountpoint == "") || s.User == "" || s.Password == "" ||
				strings.ContainsAny(s.URL+s.User, " \t\n") || s.Mountpoint != "" && !strings.HasPrefix(s.Mountpoint, "/") {
				t.Fatalf("malformed secret %#v", s)
			}
			key := s.URL
			if s.Mountpoint != "" {
				key = escapeMountpoint(s.Mountpoint)
			}
			b.WriteString(key + " " + s.User + " " + s.Password + "\n")
		}
		again, err := ParseSecrets(strings.NewReader(b.String()), "f")
		if err != nil || len(again) != len(got) {
			t.Fatalf("round trip: %v, %v", again, err)
		}
		for i := range got {
			if again[i].URL != got[i].URL || again[i].Mountpoint != got[i].Mountpoint ||
				again[i].User != got[i].User || again[i].Password != got[i].Password {
				t.Fatalf("round trip: %#v != %#v", again[i], got[i])
			}
		}
	})
}

// checkNoPasswordInError fails if a ParseSecrets error quotes what stands
// in the password position of the line it names.
func checkNoPasswordInError(t *testing.T, in string, err error) {
	var n int
	msg := err.Error()
	if _, serr := fmt.Sscanf(msg, "f line %d:", &n); serr != nil {
		t.Fatalf("error without a line number: %v", err)
	}
	lines := strings.Split(in, "\n")
	if n < 1 || n > len(lines) {
		t.Fatalf("error names line %d of %d: %v", n, len(lines), err)
	}
	_, rest, _ := cutField(strings.TrimSpace(lines[n-1]))
	_, pass, _ := cutField(rest)
	detail := strings.TrimPrefix(msg, fmt.Sprintf("f line %d: ", n))
	if len(pass) >= 4 && strings.Contains(detail, pass) && !strings.Contains(`want "URL user password" or "MOUNTPOINT user password" not a valid URL`, pass) {
		t.Fatalf("error quotes the password field %q: %v", pass, err)
	}
}
