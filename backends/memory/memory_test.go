package memory_test

import (
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
	"github.com/cloudmount/cloudmount/backends/memory"
)

// TestContract runs the conformance suite on memory backends shaped like
// the servers the mount meets: one that keeps everything, one that keeps
// what a file system served over SFTP does, one that keeps nothing, one
// with native links, and a read-only one.
func TestContract(t *testing.T) {
	exact := backends.MetaField{Stored: true, OnPut: true}
	for name, caps := range map[string]backends.Capabilities{
		"default": memory.DefaultCapabilities(),
		"filesystem": {
			MTime:    backends.MetaField{Stored: true, Precision: time.Second},
			Mode:     backends.MetaField{Stored: true},
			Symlinks: true, HardLinks: true, AtomicRename: true,
		},
		"nothing stored": {},
		"links":          {MTime: exact, Mode: exact, Owner: exact, Hash: exact, Type: exact, Symlinks: true, HardLinks: true, Quota: true},
		"2s mtimes":      {MTime: backends.MetaField{Stored: true, OnPut: true, Precision: 2 * time.Second}, Hash: exact},
		"read-only":      {ReadOnly: true, Quota: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, func(t *testing.T) backends.Backend { return memory.NewWith(caps) })
		})
	}
}
