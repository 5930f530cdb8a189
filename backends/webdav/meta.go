package webdav

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Dead properties in NS that hold backends.Meta:
//
//	cm:mtime   unix nanoseconds, decimal
//	cm:mode    permission bits, octal ("644")
//	cm:uid     decimal
//	cm:gid     decimal
//	cm:sha256  lower-case hex
//	cm:type    "symlink", "fifo" or "socket"; absent for files and directories
//	cm:etag    the ETag (without W/) of the version that cm:mtime, cm:sha256
//	           and cm:type describe
//
// Servers keep dead properties when a file is overwritten, also by clients
// that know nothing of them. The stamp ties the properties that describe
// content to the version they were written for: once the server's ETag is
// another, they are dropped when read (contentBound). Mode and owner belong
// to the path and stay. Directories are not stamped: their ETag changes
// with every child.
var metaProps = []string{"mtime", "mode", "uid", "gid", "sha256", "type"}

// specialTypes are the values cm:type may take.
var specialTypes = map[string]bool{"symlink": true, "fifo": true, "socket": true}

// encodeMeta lists the cm: properties for the fields of m that are set.
func encodeMeta(m backends.Meta) [][2]string {
	var set [][2]string
	if m.MTime != nil {
		set = append(set, [2]string{"mtime", strconv.FormatInt(m.MTime.UnixNano(), 10)})
	}
	if m.Mode != nil {
		set = append(set, [2]string{"mode", strconv.FormatUint(uint64(*m.Mode)&0o7777, 8)})
	}
	if m.UID != nil {
		set = append(set, [2]string{"uid", strconv.FormatUint(uint64(*m.UID), 10)})
	}
	if m.GID != nil {
		set = append(set, [2]string{"gid", strconv.FormatUint(uint64(*m.GID), 10)})
	}
	if m.SHA256 != "" {
		set = append(set, [2]string{"sha256", strings.ToLower(m.SHA256)})
	}
	if m.Type != "" {
		set = append(set, [2]string{"type", m.Type})
	}
	return set
}

// decodeMeta fills m from the cm: properties of p that parse.
func decodeMeta(p *msProp, m *backends.Meta) {
	if p.MTime != nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(*p.MTime), 10, 64); err == nil {
			t := time.Unix(0, n)
			m.MTime = &t
		}
	}
	if p.Mode != nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(*p.Mode), 8, 32); err == nil {
			mode := os.FileMode(n & 0o7777)
			m.Mode = &mode
		}
	}
	if p.UID != nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(*p.UID), 10, 32); err == nil {
			v := uint32(n)
			m.UID = &v
		}
	}
	if p.GID != nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(*p.GID), 10, 32); err == nil {
			v := uint32(n)
			m.GID = &v
		}
	}
	if p.SHA256 != nil {
		s := strings.ToLower(strings.TrimSpace(*p.SHA256))
		if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
			m.SHA256 = s
		}
	}
	if p.Type != nil {
		if s := strings.TrimSpace(*p.Type); specialTypes[s] {
			m.Type = s
		}
	}
}

// contentBound drops the fields of r's metadata that describe content when
// they were written for another version of a file.
func (r *resource) contentBound() {
	if r.isDir {
		return
	}
	if r.stamp != nil && opaqueTag(*r.stamp) == r.version() {
		return
	}
	r.meta.MTime, r.meta.SHA256, r.meta.Type = nil, "", ""
}

// version is the Version of a file resource: its ETag without the
// weakness indicator, or, where the server sends no ETag (nginx),
// backends.StatVersion of its size and getlastmodified.
func (r *resource) version() string {
	if v := opaqueTag(r.etag); v != "" || r.isDir {
		return v
	}
	return backends.StatVersion(r.size, r.modified)
}

// stamped adds the version stamp to a property set about e.
func stamped(set [][2]string, e backends.Entry) [][2]string {
	if e.IsDir || e.Version == "" {
		return set
	}
	return append(set, [2]string{"etag", opaqueTag(e.Version)})
}

// withMeta is e as it is once m is stored with it.
func withMeta(e backends.Entry, m backends.Meta) backends.Entry {
	e.Meta.Merge(m)
	if e.Meta.MTime != nil {
		e.ModTime = *e.Meta.MTime
	}
	return e
}

// validateMeta refuses values that could not be read back.
func validateMeta(m backends.Meta) error {
	if m.SHA256 != "" {
		if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
		}
	}
	if m.Type != "" && !specialTypes[m.Type] {
		return fmt.Errorf("unknown file type %q", m.Type)
	}
	return nil
}

// SetMeta stores the fields of m that are set and that the server keeps
// (Capabilities: dead properties) with a PROPPATCH, and returns the entry
// as the server now has it. The others are ignored: with none left it
// sends no PROPPATCH, but still looks the path up, for the entry it
// returns and for ifVersion. An mtime the server takes only with an upload
// (X-OC-Mtime) is not stored here: the fs keeps it.
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	p = cleanPath(p)
	if err := validateMeta(m); err != nil {
		return backends.Entry{}, fmt.Errorf("PROPPATCH %s: %w", display(p), err)
	}
	caps, err := b.capabilities(ctx)
	if err != nil {
		return backends.Entry{}, err
	}
	e, err := b.Stat(ctx, p)
	if err != nil {
		return e, err
	}
	if caps.ReadOnly {
		return backends.Entry{}, fmt.Errorf("PROPPATCH %s: %w", display(p), backends.ErrReadOnly)
	}
	if ifVersion != "" && e.Version != ifVersion {
		return backends.Entry{}, fmt.Errorf("PROPPATCH %s: %w: version %s is now %s", display(p), backends.ErrPrecondition, ifVersion, e.Version)
	}
	m, _ = caps.Split(m)
	if m.IsZero() {
		return e, nil
	}
	set := encodeMeta(m)
	if m.MTime != nil || m.SHA256 != "" || m.Type != "" {
		// The stamp covers all content-bound fields: keep the ones still
		// valid for this version.
		for _, kv := range encodeMeta(backends.Meta{MTime: e.Meta.MTime, SHA256: e.Meta.SHA256, Type: e.Meta.Type}) {
			if !hasProp(set, kv[0]) {
				set = append(set, kv)
			}
		}
		set = stamped(set, e)
	}
	if err := b.proppatch(ctx, p, set, nil); err != nil {
		return backends.Entry{}, err
	}
	return withMeta(e, m), nil
}
