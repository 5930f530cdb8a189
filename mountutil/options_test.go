package mountutil

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in      string
		want    []Option
		wantErr string
	}{
		{in: "", want: nil},
		{in: "ro", want: []Option{{Name: "ro"}}},
		{in: "ro,uid=1000,user=", want: []Option{{Name: "ro"}, {Name: "uid", Value: "1000", HasValue: true}, {Name: "user", HasValue: true}}},
		{in: ",,allow_other,,", want: []Option{{Name: "allow_other"}}},
		{in: `comment="a,b",x-systemd.automount`, want: []Option{{Name: "comment", Value: "a,b", HasValue: true}, {Name: "x-systemd.automount"}}},
		{in: "a=b=c", want: []Option{{Name: "a", Value: "b=c", HasValue: true}}},
		{in: `comment="a,b`, wantErr: "unterminated quote"},
		{in: "=x", wantErr: "malformed option"},
		{in: `a="b"c`, wantErr: "malformed value"},
	}
	for _, tt := range tests {
		got, err := ParseOptions(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseOptions(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOptions(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
}

// testFlags mirrors a few of the mount command's flags.
type testFlags struct {
	user               string
	ro, allowOther, fg bool
	uid                int
	timeout            time.Duration
	options            []string
	fs                 *pflag.FlagSet
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: pflag.NewFlagSet("t", pflag.ContinueOnError)}
	f.fs.StringVar(&f.user, "user", "", "")
	f.fs.BoolVar(&f.ro, "ro", false, "")
	f.fs.BoolVar(&f.allowOther, "allow-other", false, "")
	f.fs.BoolVarP(&f.fg, "foreground", "f", false, "")
	f.fs.IntVar(&f.uid, "uid", -1, "")
	f.fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "")
	f.fs.StringArrayVarP(&f.options, "options", "o", nil, "")
	return f
}

func TestApplyOptions(t *testing.T) {
	aliases := map[string]OptionAlias{"rw": {Flag: "ro", Value: "false"}}
	tests := []struct {
		name    string
		lists   []string
		check   func(*testFlags) bool
		wantErr string
	}{
		{"fstab noise is ignored", []string{"defaults,noauto,user,users,nouser,auto,_netdev,nofail,nosuid,suid,nodev,dev,noexec,exec,atime,noatime,relatime,strictatime,sync,async,x-systemd.automount,x-gvfs-show,comment=systemd.automount"},
			func(f *testFlags) bool { return f.user == "" && !f.ro && f.uid == -1 }, ""},
		{"mount.fuse3 adds dev,suid", []string{"rw,dev,suid"}, func(f *testFlags) bool { return !f.ro }, ""},
		{"user alone is fstab's", []string{"user"}, func(f *testFlags) bool { return f.user == "" }, ""},
		{"user=NAME is the remote user", []string{"noauto,user=alice"}, func(f *testFlags) bool { return f.user == "alice" }, ""},
		{"underscore and dash alike", []string{"allow_other"}, func(f *testFlags) bool { return f.allowOther }, ""},
		{"dash form", []string{"allow-other=true"}, func(f *testFlags) bool { return f.allowOther }, ""},
		{"ro", []string{"ro"}, func(f *testFlags) bool { return f.ro }, ""},
		{"rw after ro", []string{"ro", "rw"}, func(f *testFlags) bool { return !f.ro }, ""},
		{"values", []string{"uid=1000,timeout=1m"}, func(f *testFlags) bool { return f.uid == 1000 && f.timeout == time.Minute }, ""},
		{"bool flag by long name", []string{"foreground"}, func(f *testFlags) bool { return f.fg }, ""},
		{"unknown option", []string{"ro,bogus_opt"}, nil, `unknown mount option "bogus_opt"`},
		{"shorthand is no option", []string{"f"}, nil, `unknown mount option "f"`},
		{"excluded flag", []string{"options=ro"}, nil, `unknown mount option "options"`},
		{"value needed", []string{"uid"}, nil, `mount option "uid" needs a value`},
		{"bad value", []string{"uid=abc"}, nil, `mount option "uid"`},
		{"bad bool", []string{"ro=maybe"}, nil, `mount option "ro"`},
		{"alias with a value is unknown", []string{"rw=1"}, nil, `unknown mount option "rw"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFlags()
			err := ApplyOptions(f.fs, tt.lists, aliases, "options")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(f) {
				t.Errorf("flags after %q: %+v", tt.lists, *f)
			}
		})
	}
}

func TestIsIgnored(t *testing.T) {
	for _, s := range []string{"defaults", "_netdev", "x-systemd.requires=network-online.target", "comment=x", "user", "nofail"} {
		o, _ := ParseOptions(s)
		if !IsIgnored(o[0]) {
			t.Errorf("IsIgnored(%q) = false", s)
		}
	}
	for _, s := range []string{"user=alice", "ro", "uid=1", "allow_other", "defaults=1"} {
		o, _ := ParseOptions(s)
		if IsIgnored(o[0]) {
			t.Errorf("IsIgnored(%q) = true", s)
		}
	}
}

// FuzzParseOptions checks that any option string parses without panicking
// and that what parses can be written back and parsed to the same options.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{"ro,uid=1000", `comment="a,b",x-y`, "user,user=alice,,", `a="`, "=", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts, err := ParseOptions(s)
		if err != nil {
			return
		}
		var parts []string
		for _, o := range opts {
			if o.Name == "" {
				t.Fatalf("empty name from %q", s)
			}
			parts = append(parts, o.String())
		}
		again, err := ParseOptions(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, opts) {
			t.Fatalf("round trip of %q: %#v, %v; want %#v", s, again, err, opts)
		}
		fs := newTestFlags().fs
		_ = ApplyOptions(fs, []string{s}, nil, "options")
	})
}
