package fs

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	statfsBlock = 4096
	// statfsTTL is how long a quota answer is reused: df and file managers
	// call statfs often.
	statfsTTL = 10 * time.Second
	// unknownSpace is reported when the server does not say (1 PiB).
	unknownSpace = 1 << 50
)

// quotaCache remembers the server's last quota answer.
type quotaCache struct {
	mu sync.Mutex // protects the fields below
	q  backends.Quota
	at time.Time
	ok bool
}

// Statfs implements fusefs.NodeStatfser with the server's space figures
// where the backend reports them (QuotaReader).
func (n *Node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	q, ok := n.fs.quota(ctx)
	total, free := uint64(unknownSpace), uint64(unknownSpace)
	if ok && q.Available >= 0 {
		free = uint64(q.Available)
		total = free + uint64(max(q.Used, 0))
	}
	out.Bsize = statfsBlock
	out.Frsize = statfsBlock
	out.Blocks = total / statfsBlock
	out.Bfree = free / statfsBlock
	out.Bavail = out.Bfree
	out.Files = 1 << 20
	out.Ffree = 1 << 20
	out.NameLen = 255
	return 0
}

// quota returns the server's quota, cached for statfsTTL; ok is false if the
// server has none.
func (f *fsys) quota(ctx context.Context) (backends.Quota, bool) {
	qr, ok := f.be.(backends.QuotaReader)
	if !ok || !f.caps.Quota {
		return backends.Quota{}, false
	}
	f.qc.mu.Lock()
	defer f.qc.mu.Unlock()
	if time.Since(f.qc.at) < statfsTTL {
		return f.qc.q, f.qc.ok
	}
	cctx, cancel := f.call(ctx)
	defer cancel()
	q, err := qr.Quota(cctx)
	if err != nil {
		f.log.Debug("quota query failed", "err", err)
		return f.qc.q, f.qc.ok
	}
	f.qc.q, f.qc.ok, f.qc.at = q, true, time.Now()
	return q, true
}
