package webdav

import (
	"context"

	"github.com/cloudmount/cloudmount/backends"
)

// Quota returns the RFC 4331 figures of the root: Available is -1 and Used 0
// when the server does not say.
func (b *Backend) Quota(ctx context.Context) (backends.Quota, error) {
	q, _, err := b.quota(ctx)
	return q, err
}

// quota also reports whether the server gave a usable quota-available-bytes.
func (b *Backend) quota(ctx context.Context) (backends.Quota, bool, error) {
	q := backends.Quota{Available: -1}
	res, err := b.propfind(ctx, "", true, "0", propfindQuotaBody)
	if err != nil {
		return q, false, err
	}
	self, ok := b.pickSelf(res, "")
	if !ok {
		return q, false, nil
	}
	if self.quotaUsed != nil && *self.quotaUsed >= 0 {
		q.Used = *self.quotaUsed
	}
	known := self.quotaFree != nil && *self.quotaFree >= 0
	if known {
		q.Available = *self.quotaFree
	}
	return q, known, nil
}
