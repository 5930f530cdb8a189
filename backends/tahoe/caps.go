package tahoe

import (
	"encoding/hex"
	"sync"
)

// capMemoSize bounds the file caps remembered for reads by version
// (about 250 bytes each).
const capMemoSize = 8192

// capMemo remembers the read caps of the file versions the backend listed
// lately, by Version (the SHA-256 of the cap, see fileVersion), so that a
// read of a version goes to that cap (GET /uri/$FILECAP) without a listing
// first. It is bounded: the oldest entries go first. The caps stay in
// memory only.
type capMemo struct {
	mu   sync.Mutex // protects the fields below
	caps map[string]memoCap
	ring []string // versions in the order they came, capMemoSize at most
	next int      // where the next one goes in ring once it is full
}

// memoCap is a remembered file node: what a read needs of it.
type memoCap struct {
	cap     string // the read cap (a mutable file's write cap if it has no other)
	mutable bool
}

// remember notes the cap of the file node n under its Version.
func (m *capMemo) remember(n *node) {
	if n.kind != "filenode" {
		return
	}
	c := n.ro
	if c == "" {
		c = n.rw
	}
	if c == "" {
		return
	}
	v := fileVersion(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.caps == nil {
		m.caps = make(map[string]memoCap)
	}
	if _, ok := m.caps[v]; ok {
		return
	}
	if len(m.ring) < capMemoSize {
		m.ring = append(m.ring, v)
	} else {
		delete(m.caps, m.ring[m.next])
		m.ring[m.next] = v
		m.next = (m.next + 1) % capMemoSize
	}
	m.caps[v] = memoCap{cap: c, mutable: n.mutable}
}

// lookup returns the cap remembered for version.
func (m *capMemo) lookup(version string) (memoCap, bool) {
	if _, err := hex.DecodeString(version); err != nil {
		return memoCap{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.caps[version]
	return c, ok
}
