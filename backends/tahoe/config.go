package tahoe

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Config says which Tahoe-LAFS client node to talk to and which directory
// becomes the mount root.
type Config struct {
	// NodeURL is the client node's web API, e.g. "http://127.0.0.1:3456/"
	// (the content of NODEDIR/node.url).
	NodeURL string
	// Cap is the root directory capability (URI:DIR2:… read-write,
	// URI:DIR2-RO:… read-only, …). It is a secret: it never appears in a
	// log line, an error, String() or an entry (see Redact).
	Cap string
	// Timeout is the deadline of each remote call (default 30s). An
	// upload's deadline is one of progress: no data moving for Timeout
	// while it is sent, then Timeout plus a time proportional to its size
	// for the grid to take it (see uploadReplyWait).
	Timeout time.Duration
	// Logger receives the backend's logs; nil: slog.Default().
	Logger *slog.Logger
	// HTTPClient makes the requests; nil: a fresh one that takes no proxy
	// from the environment (the node is local) and follows no redirect.
	HTTPClient *http.Client
}

// DefaultTimeout bounds one remote call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Bounds of one directory listing (GET ?t=json). A listing is decoded as
// it arrives and kept only as the entries asked for; a larger one is an
// error (ErrProtocol), never a truncated listing.
const (
	// MaxListingEntries is the most children one directory may have.
	MaxListingEntries = 1_000_000
	// MaxListingBytes bounds the JSON of one listing: Tahoe pretty-prints
	// about 700 bytes per child (three caps and the metadata).
	MaxListingBytes = 1 << 30
)

// capKinds are the capability kinds this package knows, by the word after
// "URI:". dir: a directory; write: it allows changes.
var capKinds = map[string]struct{ dir, write, verify bool }{
	"DIR2":               {dir: true, write: true},
	"DIR2-RO":            {dir: true},
	"DIR2-MDMF":          {dir: true, write: true},
	"DIR2-MDMF-RO":       {dir: true},
	"DIR2-CHK":           {dir: true}, // immutable directory
	"DIR2-LIT":           {dir: true}, // immutable directory, literal
	"DIR2-Verifier":      {dir: true, verify: true},
	"DIR2-MDMF-Verifier": {dir: true, verify: true},
	"DIR2-CHK-Verifier":  {dir: true, verify: true},
	"CHK":                {},
	"LIT":                {},
	"SSK":                {write: true},
	"SSK-RO":             {},
	"MDMF":               {write: true},
	"MDMF-RO":            {},
	"CHK-Verifier":       {verify: true},
	"SSK-Verifier":       {verify: true},
	"MDMF-Verifier":      {verify: true},
}

// capKind returns the kind of a capability ("DIR2", "CHK", …) and the
// field after it, or ok false when s is not of the form URI:KIND:… . A
// leading "ro." or "imm." (how Tahoe marks caps of unknown kinds in
// listings) is skipped.
func capKind(s string) (kind, rest string, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "ro."), "imm.")
	body, found := strings.CutPrefix(s, "URI:")
	if !found {
		return "", "", false
	}
	kind, rest, found = strings.Cut(body, ":")
	if !found || kind == "" || len(kind) > 32 {
		return "", "", false
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", "", false
		}
	}
	return kind, rest, true
}

// Redact renders a capability for logs and messages: its kind and a short
// hash of the whole, "DIR2#3f2a1b", enough to tell two caps apart in a log.
// No character of the capability's key is shown, and nothing looks like a
// capability (no "URI:").
func Redact(cap string) string {
	kind, _, ok := capKind(cap)
	if !ok {
		return "(not a capability)"
	}
	c := strings.TrimSpace(cap)
	c = strings.TrimPrefix(strings.TrimPrefix(c, "ro."), "imm.")
	sum := sha256.Sum256([]byte(c))
	return kind + "#" + hex.EncodeToString(sum[:3])
}

// IsReadOnlyCap reports whether cap allows no change, decided from its kind
// alone (no request): only URI:DIR2: and URI:DIR2-MDMF: (and the write caps
// of mutable files) are writable; read-only, immutable, verify and unknown
// kinds are read-only, and so is a cap marked "ro." or "imm.".
func IsReadOnlyCap(cap string) bool {
	cap = strings.TrimSpace(cap)
	if strings.HasPrefix(cap, "ro.") || strings.HasPrefix(cap, "imm.") {
		return true
	}
	kind, _, ok := capKind(cap)
	if !ok {
		return true
	}
	k, known := capKinds[kind]
	return !known || !k.write
}

// String renders c with its cap redacted, so that a Config printed or
// logged by mistake shows no secret.
func (c Config) String() string {
	return "tahoe.Config{NodeURL: " + c.NodeURL + ", Cap: " + Redact(c.Cap) + ", Timeout: " + c.Timeout.String() + "}"
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue is String, for slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
