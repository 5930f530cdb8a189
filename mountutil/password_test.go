package mountutil

import (
	"errors"
	"os"
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
			`no password for https://host/dav/ (user carol): put "https://host/dav/ carol PASSWORD" in /nonexistent/secrets (mode 0600), give a password command (-o password_command=...), or set CLOUDMOUNT_PASSWORD`},
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

// TestResolvePasswordOrder: the user's secrets file, then the system's,
// then the password command, then netrc; entries keyed by mountpoint count
// like those keyed by URL.
func TestResolvePasswordOrder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the system secrets file must belong to root")
	}
	user := writeFile(t, "secrets", "https://host/dav/ alice user-file\n/mnt/by\\040path alice user-by-path\n", 0o600)
	system := writeFile(t, "system", "https://host/dav/ alice system-file\nhttps://host/only-system/ alice system-only\n"+
		"/mnt/sys alice system-by-path\n", 0o640)
	netrc := writeFile(t, "netrc", "machine host login alice password from-netrc\n", 0o600)
	noEnv := func(string) string { return "" }
	command := "sh -c 'echo from-command; echo second line'"
	tests := []struct {
		name       string
		url, mnt   string
		command    string
		wantPass   string
		wantSource string
	}{
		{"user file first", "https://host/dav/", "/mnt/x", command, "user-file", "secrets file " + user},
		{"user file by mountpoint", "https://other/", "/mnt/by path/", command, "user-by-path", "secrets file " + user},
		{"system file next", "https://host/only-system", "/mnt/x", command, "system-only", "secrets file " + system},
		{"system file by mountpoint", "https://other/", "/mnt/sys", command, "system-by-path", "secrets file " + system},
		{"then the command", "https://host/elsewhere/", "/mnt/x", command, "from-command", "password command"},
		{"then netrc", "https://host/elsewhere/", "/mnt/x", "", "from-netrc", "netrc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := PasswordLookup{URL: tt.url, Mountpoint: tt.mnt, User: "alice", SecretsFile: user, SystemSecretsFile: system,
				NetrcFile: netrc, Command: tt.command, Getenv: noEnv}.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			if c.Password != tt.wantPass || !strings.HasPrefix(c.From, tt.wantSource) {
				t.Errorf("got %q from %q, want %q from %q", c.Password, c.From, tt.wantPass, tt.wantSource)
			}
		})
	}
	_, err := PasswordLookup{URL: "https://host/x/", SystemSecretsFile: system, Command: command, Getenv: noEnv}.Resolve()
	if err == nil || !strings.Contains(err.Error(), "needs a user name") {
		t.Errorf("a command without a user: %v", err)
	}
}

// TestSystemSecretsFile: the system file must belong to root and be
// neither group-writable nor open to others; one this user cannot read is
// skipped.
func TestSystemSecretsFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file away")
	}
	content := "https://host/ alice pw\n"
	for _, tc := range []struct {
		mode  os.FileMode
		owner int
		want  string // "" for accepted
	}{
		{0o600, 0, ""},
		{0o640, 0, ""},
		{0o400, 0, ""},
		{0o644, 0, "accessible by others (mode 0644): chmod o-rwx"},
		{0o604, 0, "accessible by others"},
		{0o660, 0, "writable by its group (mode 0660): chmod g-w"},
		{0o600, 1000, "must belong to root: chown root"},
	} {
		p := writeFile(t, "secrets", content, tc.mode)
		if err := os.Chown(p, tc.owner, 0); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSystemSecretsFile(p)
		switch {
		case tc.want == "" && (err != nil || len(got) != 1):
			t.Errorf("mode %04o owner %d: %v, %v; want it read", tc.mode, tc.owner, got, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("mode %04o owner %d: %v; want an error naming %s and %q", tc.mode, tc.owner, err, p, tc.want)
		}
	}
	if got, err := ReadSystemSecretsFile(filepath.Join(t.TempDir(), "missing")); got != nil || err != nil {
		t.Errorf("missing file: %v, %v; want nothing", got, err)
	}
}
