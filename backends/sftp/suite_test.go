package sftp

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
)

// TestContract runs the conformance suite against the in-process server,
// each subtest in a fresh directory of its own.
func TestContract(t *testing.T) {
	s := newTestServer(t, withExec)
	c := newClient(t)
	c.trust(t, s)
	var n atomic.Int32
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		dir := filepath.Join(s.dir, "root"+strconv.Itoa(int(n.Add(1))))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := c.config(s)
		cfg.Path = dir
		return open(t, cfg)
	})
}
