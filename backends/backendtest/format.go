package backendtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// show renders an entry for a failure message, with what its pointers
// point to.
func show(e backends.Entry) string {
	kind := "file"
	if e.IsDir {
		kind = "dir"
	}
	s := fmt.Sprintf("{%s %q size %d version %q mtime %s", kind, e.Name, e.Size, e.Version, e.ModTime.Format(time.RFC3339Nano))
	if e.LinkTarget != "" {
		s += fmt.Sprintf(" -> %q", e.LinkTarget)
	}
	if !e.Meta.IsZero() {
		s += " meta " + showMeta(e.Meta)
	}
	return s + "}"
}

// showMeta renders the set fields of m.
func showMeta(m backends.Meta) string {
	var parts []string
	if m.MTime != nil {
		parts = append(parts, "mtime "+fmtTime(m.MTime))
	}
	if m.Mode != nil {
		parts = append(parts, "mode "+fmtMode(m.Mode))
	}
	if m.UID != nil {
		parts = append(parts, "uid "+fmtID(m.UID))
	}
	if m.GID != nil {
		parts = append(parts, "gid "+fmtID(m.GID))
	}
	if m.SHA256 != "" {
		parts = append(parts, "sha256 "+m.SHA256)
	}
	if m.Type != "" {
		parts = append(parts, "type "+m.Type)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.Format(time.RFC3339Nano)
}

func fmtMode(m *os.FileMode) string {
	if m == nil {
		return "none"
	}
	return fmt.Sprintf("%#o", uint32(*m))
}

func fmtID(id *uint32) string {
	if id == nil {
		return "none"
	}
	return strconv.FormatUint(uint64(*id), 10)
}

// short quotes s, or says how long it is when it is too long to show.
func short(s string) string {
	if len(s) <= 80 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%d bytes starting %q", len(s), s[:40])
}
