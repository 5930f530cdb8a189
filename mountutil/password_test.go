package mountutil

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolvePassword(t *testing.T) {
	secrets := writeFile(t, "secrets", "https://host/dav/ alice from-secrets\nhttps://solo/ sam sam-pw\n", 0o600)
	netrc := writeFile(t, "netrc", "machine host login bob password from-netrc\nmachine nethost login nina password nina-pw\n", 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return v
			}
			return ""
		}
	}
	prompt := func(p string) (string, error) { return "typed", nil }
	tests := []struct {
		name     string
		l        PasswordLookup
		wantUser string
		wantPass string
		wantFrom string
		wantErr  string
	}{
		{"env first", PasswordLookup{URL: "https://host/dav/", User: "alice", SecretsFile: secrets, Getenv: env("from-env")}, "alice", "from-env", "$CLOUDMOUNT_PASSWORD", ""},
		{"secrets file", PasswordLookup{URL: "https://host/dav", User: "alice", SecretsFile: secrets, NetrcFile: netrc}, "alice", "from-secrets", "secrets file", ""},
		{"secrets file names the user", PasswordLookup{URL: "https://solo/", SecretsFile: secrets, Getenv: env("ignored")}, "sam", "sam-pw", "secrets file", ""},
		{"netrc", PasswordLookup{URL: "https://host/dav/", User: "bob", SecretsFile: secrets, NetrcFile: netrc}, "bob", "from-netrc", "netrc", ""},
		{"netrc names the user", PasswordLookup{URL: "https://nethost/x/", NetrcFile: netrc}, "nina", "nina-pw", "netrc", ""},
		{"prompt", PasswordLookup{URL: "https://host/dav/", User: "carol", SecretsFile: secrets, NetrcFile: netrc, Prompt: prompt}, "carol", "typed", "terminal", ""},
		{"no user, no auth", PasswordLookup{URL: "https://public/", SecretsFile: secrets, NetrcFile: netrc, Prompt: prompt, Getenv: env("x")}, "", "", "", ""},
		{"missing", PasswordLookup{URL: "https://host/dav/", User: "carol", SecretsFile: "/nonexistent/secrets"}, "", "", "",
			`no password for https://host/dav/ (user carol): put "https://host/dav/ carol PASSWORD" in /nonexistent/secrets (mode 0600), or set CLOUDMOUNT_PASSWORD`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.l.Getenv == nil {
				tt.l.Getenv = env("")
			}
			c, err := tt.l.Resolve()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.User != tt.wantUser || c.Password != tt.wantPass || !strings.HasPrefix(c.From, tt.wantFrom) {
				t.Errorf("got %+v, want %s/%s from %s", c, tt.wantUser, tt.wantPass, tt.wantFrom)
			}
		})
	}
}

func TestResolvePasswordRefusesOpenFiles(t *testing.T) {
	secrets := writeFile(t, "secrets", "https://host/ alice pw\n", 0o644)
	_, err := PasswordLookup{URL: "https://host/", User: "alice", SecretsFile: secrets, Getenv: func(string) string { return "" }}.Resolve()
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+secrets) {
		t.Errorf("error = %v", err)
	}
	netrc := writeFile(t, "netrc", "machine host login alice password pw\n", 0o640)
	_, err = PasswordLookup{URL: "https://host/", User: "alice", NetrcFile: netrc, Getenv: func(string) string { return "" }}.Resolve()
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+netrc) {
		t.Errorf("error = %v", err)
	}
}

func TestResolvePasswordPrompt(t *testing.T) {
	var asked string
	l := PasswordLookup{URL: "https://host/", User: "alice", SecretsFile: filepath.Join(t.TempDir(), "none"),
		Getenv: func(string) string { return "" },
		Prompt: func(p string) (string, error) { asked = p; return "", nil }}
	if _, err := l.Resolve(); err == nil {
		t.Error("empty password accepted")
	}
	if asked != "Password for alice at https://host/: " {
		t.Errorf("prompt = %q", asked)
	}
	l.Prompt = func(string) (string, error) { return "", errors.New("no tty") }
	if _, err := l.Resolve(); err == nil || err.Error() != "no tty" {
		t.Errorf("prompt error lost: %v", err)
	}
}
