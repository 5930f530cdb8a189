package fs

import (
	"errors"

	"github.com/cloudmount/cloudmount/backends"
)

// Unauthorized implements cache.Uploader: the server refused the
// credentials or the connection's authentication (an untrusted certificate
// or host key). The queue keeps such uploads and retries them with a
// backoff until the server accepts them again.
func (f *fsys) Unauthorized(err error) bool {
	return errors.Is(err, backends.ErrAuth)
}
