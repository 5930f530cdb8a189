package tahoe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Keys of an edge's user metadata (see the package comment).
const (
	keyMTime = "mtime"
	keyCTime = "ctime"
	keyOwn   = "cloudmount"
	keyTahoe = "tahoe" // Tahoe's own: linkcrtime, linkmotime; never written
)

// ownMeta is the value of the "cloudmount" key.
type ownMeta struct {
	Mode    *uint32 `json:"mode,omitempty"`
	UID     *uint32 `json:"uid,omitempty"`
	GID     *uint32 `json:"gid,omitempty"`
	SHA256  string  `json:"sha256,omitempty"`
	Type    string  `json:"type,omitempty"`
	Version string  `json:"version,omitempty"`
}

// specialTypes are the values Meta.Type may take.
var specialTypes = map[string]bool{"symlink": true, "fifo": true, "socket": true}

// edgeMeta is the user metadata of an edge, key by key, as raw JSON, so
// that the keys of other tools pass through a rewrite unchanged. It never
// holds "tahoe".
type edgeMeta map[string]json.RawMessage

// parseMeta splits an edge's metadata into the user keys and Tahoe's
// linkmotime (zero when absent). Metadata that does not read is none.
func parseMeta(raw json.RawMessage) (user edgeMeta, linkmotime time.Time) {
	user = edgeMeta{}
	if len(raw) == 0 {
		return user, time.Time{}
	}
	var all map[string]json.RawMessage
	if json.Unmarshal(raw, &all) != nil {
		return user, time.Time{}
	}
	for k, v := range all {
		if k != keyTahoe {
			user[k] = v
		}
	}
	var sys struct {
		LinkMTime json.RawMessage `json:"linkmotime"`
	}
	if t, ok := all[keyTahoe]; ok && json.Unmarshal(t, &sys) == nil {
		linkmotime, _ = parseTime(sys.LinkMTime)
	}
	return user, linkmotime
}

// own reads the "cloudmount" key, keeping the fields that are valid.
func (m edgeMeta) own() ownMeta {
	var o ownMeta
	raw, ok := m[keyOwn]
	if !ok {
		return o
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return o
	}
	o.Mode, _ = parseUint32(fields["mode"])
	if o.Mode != nil {
		*o.Mode &= 0o7777
	}
	o.UID, _ = parseUint32(fields["uid"])
	o.GID, _ = parseUint32(fields["gid"])
	var s string
	if json.Unmarshal(fields["sha256"], &s) == nil && validSHA256(s) {
		o.SHA256 = strings.ToLower(s)
	}
	if json.Unmarshal(fields["type"], &s) == nil && specialTypes[s] {
		o.Type = s
	}
	if json.Unmarshal(fields["version"], &s) == nil {
		o.Version = s
	}
	return o
}

// setOwn stores o under "cloudmount" (removing the key when o is empty).
func (m edgeMeta) setOwn(o ownMeta) {
	if o == (ownMeta{}) {
		delete(m, keyOwn)
		return
	}
	raw, _ := json.Marshal(o)
	m[keyOwn] = raw
}

// setTime stores t under key as float seconds with microseconds.
func (m edgeMeta) setTime(key string, t time.Time) {
	m[key] = json.RawMessage(formatTime(t))
}

// clone copies m.
func (m edgeMeta) clone() edgeMeta {
	out := make(edgeMeta, len(m)+3)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// marshal is m as the JSON object set_children takes.
func (m edgeMeta) marshal() json.RawMessage {
	raw, err := json.Marshal(map[string]json.RawMessage(m))
	if err != nil {
		// A value that does not re-encode (it came from the node, so it
		// read once): drop the keys of other tools rather than fail.
		clean := edgeMeta{}
		for _, k := range []string{keyMTime, keyCTime, keyOwn} {
			if v, ok := m[k]; ok && json.Valid(v) {
				clean[k] = v
			}
		}
		raw, _ = json.Marshal(map[string]json.RawMessage(clean))
	}
	return raw
}

// described is what an edge says of its node once read: the metadata as
// backends.Meta and the ModTime.
type described struct {
	meta    backends.Meta
	modTime time.Time
}

// describe reads the metadata of an edge. version is the node's Version
// ("" for a directory): mtime, sha256 and type stamped with another
// version describe a content the file no longer has, and are dropped.
func describe(user edgeMeta, linkmotime time.Time, version string) described {
	var d described
	o := user.own()
	stale := version != "" && o.Version != "" && o.Version != version
	if mt, ok := parseTime(user[keyMTime]); ok && !stale {
		d.meta.MTime = &mt
		d.modTime = mt
	} else {
		d.modTime = linkmotime
	}
	if d.modTime.IsZero() {
		d.modTime = time.Unix(0, 0) // an edge older than Tahoe 1.4: no time at all
	}
	d.meta.Mode, d.meta.UID, d.meta.GID = fileMode(o.Mode), o.UID, o.GID
	// tahoe backup's stat fields, for what cloudmount never set.
	if d.meta.Mode == nil {
		if v, ok := parseUint32(user["st_mode"]); ok {
			d.meta.Mode = fileMode(v)
		}
	}
	if d.meta.UID == nil {
		d.meta.UID, _ = parseUint32(user["st_uid"])
	}
	if d.meta.GID == nil {
		d.meta.GID, _ = parseUint32(user["st_gid"])
	}
	if version != "" && !stale {
		d.meta.SHA256, d.meta.Type = o.SHA256, o.Type
	}
	return d
}

func fileMode(v *uint32) *os.FileMode {
	if v == nil {
		return nil
	}
	m := os.FileMode(*v & 0o7777)
	return &m
}

// putMeta is the metadata of a file Put stores at version, replacing old
// (nil for a new name): the mode and owner of old and the keys of other
// tools stay; its mtime, ctime, hash and type go, as they describe the
// old content; then m. Without an mtime in m the time of the upload is
// the mtime, so that the entry is known without asking again.
func putMeta(old *node, version string, m backends.Meta, now time.Time) edgeMeta {
	out := edgeMeta{}
	var o ownMeta
	if old != nil {
		user, _ := parseMeta(old.meta)
		prev := user.own()
		for k, v := range user {
			out[k] = v
		}
		delete(out, keyMTime)
		delete(out, keyCTime)
		o.Mode, o.UID, o.GID = prev.Mode, prev.UID, prev.GID
	}
	applyMeta(out, &o, m)
	if m.MTime == nil {
		out.setTime(keyMTime, now)
	}
	out.setTime(keyCTime, now)
	o.Version = version
	out.setOwn(o)
	return out
}

// editMeta is the metadata of an edge after SetMeta of m: everything as it
// was (mtime, hash and type only if they describe the current content),
// with m over it. An edge without an mtime gets modTime, its current one:
// Tahoe's linkmotime changes with the rewrite, and a chmod must not move
// the mtime.
func editMeta(cur *node, version string, m backends.Meta, modTime, now time.Time) edgeMeta {
	user, _ := parseMeta(cur.meta)
	out := user.clone()
	o := user.own()
	if version != "" && o.Version != "" && o.Version != version {
		delete(out, keyMTime)
		o.SHA256, o.Type = "", ""
	}
	applyMeta(out, &o, m)
	if _, ok := parseTime(out[keyMTime]); !ok && !modTime.IsZero() {
		out.setTime(keyMTime, modTime)
	}
	out.setTime(keyCTime, now)
	if version != "" {
		o.Version = version
	} else {
		o.SHA256, o.Type, o.Version = "", "", ""
	}
	out.setOwn(o)
	return out
}

// applyMeta writes the set fields of m into out and o.
func applyMeta(out edgeMeta, o *ownMeta, m backends.Meta) {
	if m.MTime != nil {
		out.setTime(keyMTime, *m.MTime)
	}
	if m.Mode != nil {
		v := uint32(*m.Mode) & 0o7777
		o.Mode = &v
	}
	if m.UID != nil {
		v := *m.UID
		o.UID = &v
	}
	if m.GID != nil {
		v := *m.GID
		o.GID = &v
	}
	if m.SHA256 != "" {
		o.SHA256 = strings.ToLower(m.SHA256)
	}
	if m.Type != "" {
		o.Type = m.Type
	}
}

// validateMeta refuses values that could not be read back.
func validateMeta(m backends.Meta) error {
	if m.SHA256 != "" && !validSHA256(m.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
	}
	if m.Type != "" && !specialTypes[m.Type] {
		return fmt.Errorf("unknown file type %q", m.Type)
	}
	return nil
}

func validSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// parseUint32 reads a JSON number that is a uint32.
func parseUint32(raw json.RawMessage) (*uint32, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 32)
	if err != nil {
		return nil, false
	}
	v := uint32(n)
	return &v, true
}

// maxTimeSeconds bounds the times read (the year 5138): beyond, a value is
// taken for garbage.
const maxTimeSeconds = 1e11

// parseTime reads float seconds since the epoch ("1700000000.123456",
// also "1700000000", "1.7e9"), to the microsecond (rounded). A decimal is
// read exactly, not through a float.
func parseTime(raw json.RawMessage) (time.Time, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return time.Time{}, false
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(digits, ".")
	if isDigits(whole) && (frac == "" && !strings.Contains(digits, ".") || isDigits(frac)) && len(whole) <= 11 {
		sec, _ := strconv.ParseInt(whole, 10, 64)
		frac += "0000000"
		micros, _ := strconv.ParseInt(frac[:6], 10, 64)
		if frac[6] >= '5' {
			micros++
		}
		total := sec*1e6 + micros
		if total >= maxTimeSeconds*1e6 {
			return time.Time{}, false
		}
		if neg {
			total = -total
		}
		return time.UnixMicro(total), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f >= maxTimeSeconds || f <= -maxTimeSeconds {
		return time.Time{}, false
	}
	us := int64(roundHalfAway(f * 1e6))
	if us >= maxTimeSeconds*1e6 || us <= -maxTimeSeconds*1e6 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

func roundHalfAway(f float64) float64 {
	if f < 0 {
		return -roundHalfAway(-f)
	}
	return float64(int64(f + 0.5))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatTime renders t as float seconds with six decimals (microseconds,
// truncated as time.Truncate does), which Tahoe stores as a float and
// gives back as the same decimal.
func formatTime(t time.Time) string {
	us := t.UnixMicro()
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%06d", sign, us/1e6, us%1e6)
}

// fileVersion names the content of a file node: the SHA-256 of its read
// cap, which changes exactly when the content does (convergent
// encryption). A mutable file keeps its cap when rewritten; its Version
// adds the size, so a rewrite by another client that keeps the size is
// not seen.
func fileVersion(n *node) string {
	c := n.ro
	if c == "" {
		c = n.rw
	}
	if !n.mutable {
		h := sha256.Sum256([]byte(c))
		return hex.EncodeToString(h[:])
	}
	h := sha256.Sum256([]byte("mutable\x00" + c + "\x00" + strconv.FormatInt(n.size, 10)))
	return hex.EncodeToString(h[:])
}

// errUnknownNode marks a child of a kind the node does not know (a cap
// from a newer Tahoe): it is neither listed nor changed.
var errUnknownNode = errors.New("a node of a kind this Tahoe node does not know")

// entryOf is the entry of a child. A mutable file's size must be known
// (fillSize).
func entryOf(name string, n *node) (backends.Entry, error) {
	user, linkmotime := parseMeta(n.meta)
	switch n.kind {
	case "dirnode":
		d := describe(user, linkmotime, "")
		return backends.Entry{Name: name, IsDir: true, ModTime: d.modTime, Meta: d.meta}, nil
	case "filenode":
		if n.size < 0 {
			return backends.Entry{}, fmt.Errorf("%w: a file without a size", backends.ErrProtocol)
		}
		v := fileVersion(n)
		d := describe(user, linkmotime, v)
		return backends.Entry{Name: name, Size: n.size, ModTime: d.modTime, Version: v, Meta: d.meta}, nil
	}
	return backends.Entry{}, errUnknownNode
}
