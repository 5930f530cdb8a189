package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseMountArgs(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*mountFlags) bool
	}{
		{"mount(8) form", []string{"https://h/d/", "/mnt", "-o", "rw,noauto,user,_netdev,nofail,dev,suid,uid=1000,gid=100,allow_other,x-systemd.automount"},
			func(f *mountFlags) bool {
				return f.source == "https://h/d/" && f.mountpoint == "/mnt" && f.uid == 1000 && f.gid == 100 &&
					f.allowOther && !f.readOnly && f.user == "" && !f.foreground
			}},
		{"flags", []string{"-f", "--user", "bob", "--ro", "--timeout", "1m", "--attr-timeout=0", "https://h/", "/mnt", "-v"},
			func(f *mountFlags) bool {
				return f.foreground && f.user == "bob" && f.readOnly && f.timeout == duration(time.Minute) &&
					f.attrTimeout == 0 && f.verbose && !f.userFromOption
			}},
		{"-o user=NAME", []string{"https://h/", "/mnt", "-o", "user=alice,ro"},
			func(f *mountFlags) bool { return f.user == "alice" && f.userFromOption && f.readOnly }},
		{"-o user alone", []string{"https://h/", "/mnt", "-o", "user"},
			func(f *mountFlags) bool { return f.user == "" }},
		{"several -o, dash and underscore", []string{"-o", "default_permissions", "https://h/", "/mnt", "-o", "attr-timeout=5,timeout=2.5", "-odebug"},
			func(f *mountFlags) bool {
				return f.defaultPermissions && f.attrTimeout == duration(5*time.Second) &&
					f.timeout == duration(2500*time.Millisecond) && f.debug
			}},
		{"-o secrets_file", []string{"https://h/", "/mnt", "-o", "secrets_file=/etc/cm,cache_dir=/var/cache/cm,log_file=/tmp/l,ca_file=/ca,nonempty,foreground,verbose"},
			func(f *mountFlags) bool {
				return f.secretsFile == "/etc/cm" && f.cacheDir == "/var/cache/cm" && f.logFile == "/tmp/l" &&
					f.caFile == "/ca" && f.nonempty && f.foreground && f.verbose
			}},
		{"defaults", []string{"https://h/", "/mnt"},
			func(f *mountFlags) bool {
				return f.timeout == duration(30*time.Second) && f.attrTimeout == duration(time.Second) &&
					f.uid == -1 && f.gid == -1 && strings.HasSuffix(f.secretsFile, "/cloudmount/secrets")
			}},
		{"help", []string{"--help"}, func(f *mountFlags) bool { return f.help }},
		{"default modes", []string{"https://h/", "/mnt"},
			func(f *mountFlags) bool {
				return f.fileMode.bits == 0o644 && f.dirMode.bits == 0o755 && f.umask.bits == 0
			}},
		{"davfs2's modes", []string{"https://h/", "/mnt", "-o", "file_mode=640,dir_mode=0o2750"},
			func(f *mountFlags) bool {
				return f.fileMode.bits == 0o640 && f.dirMode.bits == 0o2750 && f.umask.bits == 0
			}},
		{"umask alone", []string{"https://h/", "/mnt", "-o", "umask=002"},
			func(f *mountFlags) bool {
				return f.fileMode.bits == 0o666 && f.dirMode.bits == 0o777 && f.umask.bits == 0o002
			}},
		{"umask with file_mode", []string{"https://h/", "/mnt", "--umask", "077", "-o", "file_mode=0600"},
			func(f *mountFlags) bool {
				return f.fileMode.bits == 0o600 && f.dirMode.bits == 0o777 && f.umask.bits == 0o077
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseMountArgs(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(f) {
				t.Errorf("parsed %q as %+v", tt.args, *f)
			}
		})
	}
}

// TestAllowOtherDefaultPermissions: allow_other turns on the kernel's
// permission checks unless the user turns them off explicitly.
func TestAllowOtherDefaultPermissions(t *testing.T) {
	tests := []struct {
		name                   string
		args                   []string
		allowOther, permChecks bool
	}{
		{"neither", nil, false, false},
		{"--allow-other", []string{"--allow-other"}, true, true},
		{"-o allow_other", []string{"-o", "allow_other"}, true, true},
		{"fstab style", []string{"-o", "rw,user,noauto,allow_other"}, true, true},
		{"--default-permissions alone", []string{"--default-permissions"}, false, true},
		{"--default-permissions=false", []string{"--allow-other", "--default-permissions=false"}, true, false},
		{"-o default_permissions=false", []string{"-o", "allow_other,default_permissions=false"}, true, false},
		{"off before allow_other", []string{"-o", "default_permissions=false", "--allow-other"}, true, false},
		{"both on", []string{"-o", "allow_other,default_permissions"}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseMountArgs(append([]string{"https://h/", "/mnt"}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			if f.allowOther != tt.allowOther || f.defaultPermissions != tt.permChecks {
				t.Errorf("%q: allow_other %v default_permissions %v, want %v %v",
					tt.args, f.allowOther, f.defaultPermissions, tt.allowOther, tt.permChecks)
			}
		})
	}
	var help bytes.Buffer
	mountUsage(&help)
	for _, want := range []string{"--default-permissions=false", "turns on\n--default-permissions"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("mount help lacks %q", want)
		}
	}
}

func TestParseMountArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"https://h/"}, "missing MOUNTPOINT"},
		{[]string{}, "missing SOURCE and MOUNTPOINT"},
		{[]string{"a", "b", "c"}, "too many arguments"},
		{[]string{"https://h/", "/mnt", "-o", "rw,bogus"}, `unknown mount option "bogus"`},
		{[]string{"https://h/", "/mnt", "-o", "password=x"}, `unknown mount option "password"`},
		{[]string{"https://h/", "/mnt", "-o", "options=ro"}, `unknown mount option "options"`},
		{[]string{"https://h/", "/mnt", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"https://h/", "/mnt", "-o", "uid=x"}, `mount option "uid"`},
		{[]string{"https://h/", "/mnt", "--uid=-5"}, "--uid and --gid"},
		{[]string{"https://h/", "/mnt", "--timeout=0"}, "--timeout must be positive"},
		{[]string{"https://h/", "/mnt", "--timeout=soon"}, "not a duration"},
		{[]string{"https://h/", "/mnt", "--timeout=NaN"}, "not a duration"},
		{[]string{"https://h/", "/mnt", "-o", "timeout=-1"}, "negative duration"},
		{[]string{"https://h/", "/mnt", "-o", "file_mode=rw"}, "not an octal mode"},
		{[]string{"https://h/", "/mnt", "-o", "file_mode=0899"}, "not an octal mode"},
		{[]string{"https://h/", "/mnt", "-o", "dir_mode=17777"}, "more than 7777"},
		{[]string{"https://h/", "/mnt", "-o", "umask=1022"}, "more than 0777"},
		{[]string{"https://h/", "/mnt", "-o", "file_mode=0"}, "must not be 0000"},
		{[]string{"https://h/", "/mnt", "-o", "umask"}, `mount option "umask" needs a value`},
		{[]string{"https://h/", "/mnt", "--chunk-size=1M"}, "--chunk-size must be between 5M and 5G"},
		{[]string{"https://h/", "/mnt", "-o", "chunk_size=6G"}, "--chunk-size must be between 5M and 5G"},
	}
	for _, tt := range tests {
		_, err := parseMountArgs(tt.args)
		var usage usageError
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.As(err, &usage) {
			t.Errorf("parseMountArgs(%q) error = %v, want a usage error %q", tt.args, err, tt.want)
		}
	}
}

func TestResolveMountUser(t *testing.T) {
	mnt := t.TempDir()
	t.Setenv("CLOUDMOUNT_PASSWORD", "pw")
	tests := []struct {
		args     []string
		wantUser string
		wantErr  string
	}{
		{[]string{"https://alice@h/", mnt}, "alice", ""},
		{[]string{"https://h/", mnt, "--user", "bob"}, "bob", ""},
		{[]string{"https://alice@h/", mnt, "--user", "alice"}, "alice", ""},
		{[]string{"https://alice@h/", mnt, "--user", "bob"}, "", `the URL names user "alice" but --user says "bob"`},
		// mount(8) may pass user=LOCALUSER for an fstab "user" mount: the URL wins.
		{[]string{"https://alice@h/", mnt, "-o", "user=bob"}, "alice", ""},
		{[]string{"https://h/", mnt, "-o", "user=bob"}, "bob", ""},
	}
	for _, tt := range tests {
		f, err := parseMountArgs(append(tt.args, "--secrets-file", "", "--cache-dir", t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := resolveMount(f)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if cfg.User != tt.wantUser || cfg.Password != "pw" || cfg.FSName != "https://"+tt.wantUser+"@h/" {
			t.Errorf("%q: user %q password %q fsname %q; want user %q", tt.args, cfg.User, cfg.Password, cfg.FSName, tt.wantUser)
		}
	}
}

func TestMountConfigLogNoPassword(t *testing.T) {
	cfg := &mountConfig{Source: "https://h/", User: "alice", Password: "hunter2", PasswordFrom: "$CLOUDMOUNT_PASSWORD", Timeout: time.Second}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "config", cfg)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "config", cfg)
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("password logged: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "password from $CLOUDMOUNT_PASSWORD") {
		t.Errorf("log lacks where the password came from: %s", buf.String())
	}
}

// TestResolveMountPasswordCommand: -o password_command runs the command
// (quotes and commas in the value survive the option list) and the first
// line it prints is the password.
func TestResolveMountPasswordCommand(t *testing.T) {
	t.Setenv("CLOUDMOUNT_PASSWORD", "")
	for _, args := range [][]string{
		{"-o", `password_command="sh -c 'echo pw,1; echo other'"`},
		{"--password-command", `sh -c "echo pw,1"`},
	} {
		f, err := parseMountArgs(append([]string{"https://alice@h/", t.TempDir(), "--secrets-file", "", "--cache-dir", t.TempDir()}, args...))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := resolveMount(f)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if cfg.Password != "pw,1" || cfg.PasswordFrom != "password command" {
			t.Errorf("%q: password %q from %q", args, cfg.Password, cfg.PasswordFrom)
		}
	}
	f, err := parseMountArgs([]string{"https://alice@h/", t.TempDir(), "--secrets-file", "", "-o", "password_command=false"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resolveMount(f); err == nil || err.Error() != "password command false failed: exit status 1" {
		t.Errorf("a failing command: %v", err)
	}
}
