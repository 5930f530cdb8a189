package mountutil

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Option is one element of a mount option list ("ro", "uid=1000").
type Option struct {
	// Name is the option name as written ("allow_other").
	Name string
	// Value is what follows the first '=', without surrounding quotes.
	Value string
	// HasValue tells "user" (false) from "user=" or "user=alice" (true).
	HasValue bool
}

// Key is the option name with '_' turned into '-', the form flags use.
func (o Option) Key() string { return strings.ReplaceAll(o.Name, "_", "-") }

// String writes the option back in -o syntax.
func (o Option) String() string {
	if !o.HasValue {
		return o.Name
	}
	if strings.ContainsAny(o.Value, `,"`) {
		return o.Name + `="` + o.Value + `"`
	}
	return o.Name + "=" + o.Value
}

// ParseOptions splits a comma-separated -o list as mount(8) writes it.
// Commas inside double quotes do not split (opt="a,b"); empty elements are
// skipped.
func ParseOptions(s string) ([]Option, error) {
	var (
		opts  []Option
		cur   strings.Builder
		quote bool
	)
	flush := func() error {
		elem := cur.String()
		cur.Reset()
		if elem == "" {
			return nil
		}
		o, err := parseOption(elem)
		if err != nil {
			return err
		}
		opts = append(opts, o)
		return nil
	}
	for _, r := range s {
		switch {
		case r == '"':
			quote = !quote
			cur.WriteRune(r)
		case r == ',' && !quote:
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quote {
		return nil, errors.New("mount options: unterminated quote")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return opts, nil
}

// parseOption splits one element into name and value.
func parseOption(elem string) (Option, error) {
	name, value, hasValue := strings.Cut(elem, "=")
	if name == "" || strings.Contains(name, `"`) {
		return Option{}, fmt.Errorf("mount options: malformed option %q", elem)
	}
	if hasValue {
		if n := len(value); n >= 2 && value[0] == '"' && value[n-1] == '"' {
			value = value[1 : n-1]
		}
		if strings.Contains(value, `"`) {
			return Option{}, fmt.Errorf("mount options: malformed value of option %q", name)
		}
	}
	return Option{Name: name, Value: value, HasValue: hasValue}, nil
}

// ignoredOptions are what fstab, mount(8) and mount.fuse3 pass to a helper
// and that mean nothing to cloudmount (or are enforced by the kernel). They
// are accepted silently. Keys use '-' for '_'.
var ignoredOptions = map[string]bool{
	"defaults": true, "user": true, "users": true, "nouser": true, "owner": true,
	"group": true, "nousers": true, "noowner": true, "nogroup": true, "auto": true, "noauto": true, "-netdev": true, "nofail": true,
	"nosuid": true, "suid": true, "nodev": true, "dev": true, "noexec": true,
	"exec": true, "atime": true, "noatime": true, "relatime": true,
	"norelatime": true, "strictatime": true, "nostrictatime": true,
	"diratime": true, "nodiratime": true, "lazytime": true, "nolazytime": true,
	"sync": true, "async": true, "dirsync": true, "silent": true, "loud": true,
}

// IsIgnored reports whether o is an fstab or mount(8) option that cloudmount
// accepts and ignores: the generic mount options, x-* and comment=*.
// "user" alone is ignored (it lets users mount an fstab entry) but
// "user=NAME" is not: it names the remote user.
func IsIgnored(o Option) bool {
	k := o.Key()
	if strings.HasPrefix(k, "x-") || k == "comment" {
		return true
	}
	return !o.HasValue && ignoredOptions[k]
}

// OptionAlias maps an -o option with no flag of its own to a flag and the
// value it sets, such as "rw" to {"ro", "false"}.
type OptionAlias struct {
	Flag, Value string
}

// ApplyOptions sets the flags of fs from -o lists: "name=value" sets flag
// name, a bare "name" sets a boolean flag to true, '_' and '-' are alike.
// Ignored options (IsIgnored) are skipped, aliases are applied, and flags
// listed in exclude cannot be set this way. An unknown option is an error
// that names it.
func ApplyOptions(fs *pflag.FlagSet, lists []string, aliases map[string]OptionAlias, exclude ...string) error {
	for _, list := range lists {
		opts, err := ParseOptions(list)
		if err != nil {
			return err
		}
		for _, o := range opts {
			if err := applyOption(fs, o, aliases, exclude); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyOption sets the flag that one option names.
func applyOption(fs *pflag.FlagSet, o Option, aliases map[string]OptionAlias, exclude []string) error {
	if a, ok := aliases[o.Key()]; ok && !o.HasValue {
		return setFlag(fs, o, a.Flag, a.Value)
	}
	if IsIgnored(o) {
		return nil
	}
	f := fs.Lookup(o.Key())
	if f == nil || f.Hidden || f.Deprecated != "" || slices.Contains(exclude, f.Name) {
		return fmt.Errorf("unknown mount option %q", o.Name)
	}
	switch {
	case o.HasValue:
		return setFlag(fs, o, f.Name, o.Value)
	case f.Value.Type() == "bool":
		return setFlag(fs, o, f.Name, "true")
	default:
		return fmt.Errorf("mount option %q needs a value (%s=...)", o.Name, o.Name)
	}
}

// setFlag sets one flag and says which option was at fault if it fails.
func setFlag(fs *pflag.FlagSet, o Option, name, value string) error {
	if err := fs.Set(name, value); err != nil {
		return fmt.Errorf("mount option %q: %w", o.Name, err)
	}
	return nil
}
