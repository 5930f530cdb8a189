package davserver

import (
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
)

// ETagOf is the ETag this server hands out for a file with the info fi
// (for servers built on this one).
func ETagOf(fi os.FileInfo) string { return etagOf(fi) }

// etagOf is the ETag of a file as this server hands it out (GET, PUT,
// PROPFIND) and checks it (If-Match): inode, size and mtime in nanoseconds.
// Two writes of the same size within one tick of the filesystem clock get
// the same tag.
func etagOf(fi os.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf(`"%x-%x-%x"`, ino, fi.Size(), fi.ModTime().UnixNano())
}

// matchList reports whether the header values (comma-separated entity tags
// or "*") match etag ("" = no resource). strong selects the strong
// comparison of If-Match; If-None-Match uses the weak one.
func matchList(values []string, etag string, strong bool) bool {
	for _, v := range values {
		for _, t := range splitTags(v) {
			if t == "*" {
				if etag != "" {
					return true
				}
				continue
			}
			if etag == "" {
				continue
			}
			if strong {
				if !strings.HasPrefix(t, "W/") && t == etag {
					return true
				}
			} else if strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
				return true
			}
		}
	}
	return false
}

// splitTags splits `"a", W/"b,c"` into its entity tags (commas may appear
// inside the quotes).
func splitTags(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		end := len(s)
		start := 0
		if strings.HasPrefix(s, "W/") {
			start = 2
		}
		if start < len(s) && s[start] == '"' {
			if i := strings.IndexByte(s[start+1:], '"'); i >= 0 {
				end = start + 1 + i + 1
			}
		} else if i := strings.IndexByte(s, ','); i >= 0 {
			end = i
		}
		out = append(out, strings.TrimSpace(s[:end]))
		s = s[end:]
	}
}

// cleanURLPath is the canonical form of a request path, the key of the
// per-path PUT lock.
func cleanURLPath(p string) string {
	return path.Clean("/" + p)
}

// keyedMutex serialises work on one key (a path) and lets other keys run.
type keyedMutex struct {
	mu sync.Mutex // protects m
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int // guarded by keyedMutex.mu
}

func newKeyedMutex() *keyedMutex {
	return &keyedMutex{m: make(map[string]*keyedEntry)}
}

// lock takes the lock of key and returns its unlock function.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
