package sftp

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// DefaultLeftoverAge is how old a temporary upload file must be before a
// listing of its directory takes it for the leftover of a mount that was
// killed mid-upload and removes it (Config.LeftoverAge).
const DefaultLeftoverAge = 24 * time.Hour

// tempName is the temporary name of an upload that starts at now:
// UploadPrefix, the start in Unix seconds, a dash and random digits. The
// start tells other mounts the upload's age: the file's mtime cannot,
// since an upload sets it to the file's own before the rename.
func tempName(now time.Time) string {
	return UploadPrefix + strconv.FormatInt(now.Unix(), 10) + "-" + randomName()
}

// tempStarted reads the start of an upload from its temporary name; ok is
// false for a name without one (older versions wrote none).
func tempStarted(name string) (start time.Time, ok bool) {
	rest, found := strings.CutPrefix(name, UploadPrefix)
	if !found {
		return time.Time{}, false
	}
	secs, _, found := strings.Cut(rest, "-")
	if !found {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// isLeftover reports whether a hidden entry of a listing may be removed:
// a temporary upload file whose upload started more than age ago and that
// was last written more than age ago (a running upload writes all the
// time, and one that runs longer than age/2 sets the mtime only after its
// rename), or a probe file older than age (a probe lasts a round trip).
// A mount's clock or the server's running ahead makes a file younger,
// never older, than age when it is not.
func isLeftover(name string, mtime, now time.Time, age time.Duration) bool {
	if now.Sub(mtime) <= age {
		return false
	}
	switch {
	case strings.HasPrefix(name, UploadPrefix):
		if start, ok := tempStarted(name); ok {
			return now.Sub(start) > age
		}
		return true
	case strings.HasPrefix(name, ProbePrefix):
		return true
	}
	return false
}

// sweepLeftovers removes, in the background, the leftovers that a listing
// of dir found (by name in dir). Each is tried once in the life of the
// mount, whatever the outcome: a read-only directory is not asked again.
func (b *Backend) sweepLeftovers(dir string, names []string) {
	var todo []string
	b.sweptMu.Lock()
	for _, n := range names {
		p := path.Join(dir, n)
		if !b.swept[p] {
			if b.swept == nil {
				b.swept = map[string]bool{}
			}
			b.swept[p] = true
			todo = append(todo, p)
		}
	}
	b.sweptMu.Unlock()
	if len(todo) == 0 {
		return
	}
	go func() {
		for _, p := range todo {
			if err := b.removeLeftover(p); err != nil {
				b.log.Debug("sftp: cannot remove an old temporary file", "server", b.hostPort,
					backends.NameAttr("path", p), "error", err)
				continue
			}
			b.log.Info("sftp: removed the temporary file of an upload cut off long ago (a mount killed mid-upload)",
				"server", b.hostPort, backends.NameAttr("path", p))
		}
	}()
}

// removeLeftover removes the file p, within the call's deadline.
func (b *Backend) removeLeftover(p string) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return err
	}
	defer s.end(nil)
	err = s.do(func(c *sftp.Client) error { return c.Remove(b.remote(p)) })
	if err != nil && !errors.Is(classify(err), backends.ErrNotFound) {
		return fmt.Errorf("remove: %w", opError("remove", p, err))
	}
	return nil
}
