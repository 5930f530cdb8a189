package tahoe

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	hash := func(cap string) string {
		sum := sha256.Sum256([]byte(strings.TrimSpace(cap)))
		return hex.EncodeToString(sum[:3])
	}
	for _, c := range []struct{ cap, want string }{
		{"URI:DIR2:abcdefghijklmnop:qrstuvwxyz234567", "DIR2#" + hash("URI:DIR2:abcdefghijklmnop:qrstuvwxyz234567")},
		{"  URI:DIR2-RO:wxyzabcd:1234\n", "DIR2-RO#" + hash("URI:DIR2-RO:wxyzabcd:1234")},
		{"URI:CHK:k3yk3yk3y:ueb:2:3:100", "CHK#" + hash("URI:CHK:k3yk3yk3y:ueb:2:3:100")},
		{"URI:LIT:", "LIT#" + hash("URI:LIT:")},
		{"not a cap", "(not a capability)"},
		{"URI:", "(not a capability)"},
		{"URI:DIR2", "(not a capability)"},
		{"URI:DI R2:abcdef", "(not a capability)"},
		{"", "(not a capability)"},
	} {
		if got := Redact(c.cap); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.cap, got, c.want)
		}
	}
}

func TestIsReadOnlyCap(t *testing.T) {
	for cap, want := range map[string]bool{
		"URI:DIR2:aaaa:bbbb":              false,
		"URI:DIR2-MDMF:aaaa:bbbb":         false,
		"URI:DIR2-RO:aaaa:bbbb":           true,
		"URI:DIR2-MDMF-RO:aaaa:bbbb":      true,
		"URI:DIR2-CHK:aaaa:bbbb:1:3:10":   true,
		"URI:DIR2-LIT:aaaa":               true,
		"URI:DIR2-Verifier:aaaa:bbbb":     true,
		"URI:NEWKIND:aaaa":                true, // unknown: read-only
		"garbage":                         true,
		"URI:CHK:aaaa:bbbb:1:3:10":        true,
		"URI:SSK:aaaa:bbbb":               false,
		" URI:DIR2:aaaa:bbbb\n":           false,
		"ro.URI:DIR2:aaaa:bbbb":           true, // a cap from a read slot
		"URI:DIR2-RO-SOMETHING-NEW:aaaa:": true,
	} {
		if got := IsReadOnlyCap(cap); got != want {
			t.Errorf("IsReadOnlyCap(%q) = %v, want %v", cap, got, want)
		}
	}
}

func TestScrubCaps(t *testing.T) {
	dir := "URI:DIR2:" + strings.Repeat("a", 26) + ":" + strings.Repeat("b", 52)
	for _, in := range []string{
		"request PUT /uri/" + dir + "/x?t=json",
		"request PUT /uri/" + strings.ReplaceAll(dir, ":", "%3A") + "/x",
		"request PUT /uri/" + strings.ReplaceAll(dir, ":", "%3a") + "/x",
		"'" + dir + "' is not a valid file- or directory- cap",
		"b'" + dir + "'",
		"ro." + dir,
	} {
		out := scrubCaps(in)
		if strings.Contains(out, strings.Repeat("a", 5)) || strings.Contains(out, strings.Repeat("b", 5)) {
			t.Errorf("scrubCaps(%q) = %q: the cap is still there", in, out)
		}
		if !strings.Contains(out, Redact(dir)) {
			t.Errorf("scrubCaps(%q) = %q: no redacted form", in, out)
		}
	}
}
