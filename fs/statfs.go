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
	// asking is closed when the query in flight ends; nil: none.
	asking chan struct{}
}

// statfsFirstWait bounds how long the first statfs of a mount waits for
// the server's answer; later ones never wait (see quota).
const statfsFirstWait = 2 * time.Second

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

// quota returns the server's quota; ok is false if the server has none or
// has not said yet. It answers from the last answer at once, and asks the
// server again in the background once that is older than statfsTTL: df and
// file managers call statfs all the time, and must not wait on a slow
// server or behind an upload. Only the mount's first statfs waits for an
// answer, at most statfsFirstWait.
func (f *fsys) quota(ctx context.Context) (backends.Quota, bool) {
	qr, ok := f.be.(backends.QuotaReader)
	if !ok || !f.caps.Quota {
		return backends.Quota{}, false
	}
	f.qc.mu.Lock()
	if time.Since(f.qc.at) < statfsTTL || f.stalled() {
		defer f.qc.mu.Unlock()
		return f.qc.q, f.qc.ok
	}
	if f.qc.asking == nil {
		done := make(chan struct{})
		f.qc.asking = done
		go func() {
			defer close(done)
			cctx, cancel := f.call(context.Background())
			defer cancel()
			q, err := qr.Quota(cctx)
			f.qc.mu.Lock()
			defer f.qc.mu.Unlock()
			f.qc.asking = nil
			if err != nil {
				f.noteErr(err)
				f.log.Debug("quota query failed", "err", err)
				f.qc.at = time.Now() // asked again after statfsTTL
				return
			}
			f.answered()
			f.qc.q, f.qc.ok, f.qc.at = q, true, time.Now()
		}()
	}
	asking, first := f.qc.asking, f.qc.at.IsZero()
	f.qc.mu.Unlock()
	if first {
		t := time.NewTimer(statfsFirstWait)
		defer t.Stop()
		select {
		case <-asking:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	f.qc.mu.Lock()
	defer f.qc.mu.Unlock()
	return f.qc.q, f.qc.ok
}
