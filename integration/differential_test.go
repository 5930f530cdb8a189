package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cloudmount/cloudmount/fs/difftest"
)

// TestDifferential drives the mount and a local directory with the same
// seeded random operations (fs/difftest); at every checkpoint
// `cloudmount sync` must bring the server's files (read from its
// directory on disk) to exactly the local directory's bytes, and the hash
// attribute must be the hash of those bytes. After a remount with the same
// cache, and with a fresh one, the mount still shows the same bytes.
// make soak runs it with DIFFTEST_SCALE=100.
func TestDifferential(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--attr-timeout", "10ms", "--dir-cache-time", "10ms"}})
		local := t.TempDir()
		skip := func(rel string) bool { return srv.Hidden(rel[strings.LastIndex(rel, "/")+1:]) }
		cfg := difftest.Config{
			Ops: 2000,
			Sync: func() error {
				out, code, err := m.TrySync(syncTimeout)
				if err != nil || code != 0 {
					return fmt.Errorf("cloudmount sync: exit %d, %v: %s", code, err, out)
				}
				return nil
			},
			ServerFiles: func() (map[string][]byte, error) { return difftest.Tree(srv.Dir, skip) },
			Hash:        true,
		}
		difftest.Run(t, m.Dir, local, cfg)
		for _, fresh := range []bool{false, true} {
			m = m.Remount(t, fresh)
			compareTree(t, local, m.Dir, false, nil)
		}
	})
}
