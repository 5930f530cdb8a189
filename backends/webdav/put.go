package webdav

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// expectContinueMin is the upload size from which a PUT first asks the
// server whether it will take the body (Expect: 100-continue), so that a
// refused upload (401, 412, 507) does not send gigabytes for nothing.
const expectContinueMin = 1 << 20

// Put uploads the file at p from r, streaming (size < 0: unknown, sent
// chunked), then stores opts.Meta and returns the entry as the server now has
// it.
//
// Conditions: opts.IfNoneMatch sends If-None-Match: *. opts.IfMatch is sent
// as If-Match when the server gave it as a strong ETag. A weak one (Apache
// hands out W/"…" for files changed within the last second; Versions carry
// no W/, weakTags remembers which were weak) never matches under the strong
// comparison If-Match uses, so it is checked with a PROPFIND first instead:
// when the server's tag is now strong with the same value it is sent as
// If-Match; when it is still weak the PUT goes without If-Match, leaving a
// window of one round trip in which another writer's change can be lost.
// Servers that ignore the conditional headers (found by the probe) get the
// same PROPFIND check.
//
// Files above the chunk size go to Nextcloud in chunks (putChunked), and
// so does an upload that a server with chunks refused as too large (413)
// before reading any of it.
//
// Where the server cannot check a condition itself (no conditional PUT, a
// weak ETag), the content goes to a temporary name beside p first
// (UploadPrefix, never listed) and is moved onto p afterwards: a new file
// with Overwrite: F, which the server refuses when p appeared meanwhile,
// an edit after a second PROPFIND of p. The window in which another
// client's change is replaced shrinks from the whole upload to the round
// trip between that PROPFIND and the MOVE, and readers never see a partly
// written file.
//
// r must give exactly size bytes: the upload fails otherwise, and the
// last bytes are held back until r is known to end, so that the server
// never gets a whole body cut from a longer source. A PUT refused with 423
// Locked before any of its body was read is sent again after a pause
// (lockedWaits).
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	p = cleanPath(p)
	if p == "" {
		return backends.Entry{}, fmt.Errorf("PUT /: %w", backends.ErrIsDir)
	}
	if err := validateMeta(opts.Meta); err != nil {
		return backends.Entry{}, fmt.Errorf("PUT %s: %w", display(p), err)
	}
	caps, err := b.capabilities(ctx)
	if err != nil {
		return backends.Entry{}, err
	}
	ifMatch, err := b.checkPrecondition(ctx, p, opts, caps)
	if err != nil {
		return backends.Entry{}, err
	}
	if chunk := b.chunkSizeFor(size, false); chunk > 0 {
		err = b.putChunked(ctx, p, r, size, chunk, opts, ifMatch)
	} else if (opts.IfNoneMatch && !caps.ConditionalPut) || (opts.IfMatch != "" && ifMatch == "") {
		err = b.putViaTemp(ctx, p, r, size, opts, caps)
	} else {
		err = b.put(ctx, p, r, size, opts, ifMatch, caps)
	}
	err = b.chunkedAfter413(ctx, p, r, size, opts, ifMatch, err)
	if errors.Is(err, backends.ErrTooLarge) {
		return backends.Entry{}, b.explainTooLarge(p, size, err)
	}
	if err != nil {
		return backends.Entry{}, err
	}
	e, err := b.Stat(ctx, p)
	if err != nil || !caps.Hash.Stored || (opts.Meta.IsZero() && opts.IfNoneMatch) {
		return e, err
	}
	// Overwriting keeps the old dead properties on most servers: drop those
	// that describe the old content, and stamp the new ones with the new
	// version.
	set := encodeMeta(opts.Meta)
	var remove []string
	for _, name := range []string{"mtime", "sha256", "type"} {
		if !hasProp(set, name) {
			remove = append(remove, name)
		}
	}
	if err := b.proppatch(ctx, p, stamped(set, e), remove); err != nil {
		return e, fmt.Errorf("PROPPATCH %s: %w: %w", display(p), backends.ErrMetaNotStored, err)
	}
	e.Meta.MTime, e.Meta.SHA256, e.Meta.Type = nil, "", ""
	return withMeta(e, opts.Meta), nil
}

func hasProp(set [][2]string, name string) bool {
	for _, kv := range set {
		if kv[0] == name {
			return true
		}
	}
	return false
}

// checkPrecondition settles the If-Match/If-None-Match conditions that the
// server cannot check itself and returns the If-Match value to send.
func (b *Backend) checkPrecondition(ctx context.Context, p string, opts backends.PutOptions, caps backends.Capabilities) (string, error) {
	if opts.IfNoneMatch && !caps.ConditionalPut {
		_, err := b.Stat(ctx, p)
		if err == nil {
			return "", fmt.Errorf("PUT %s: %w %w", display(p), backends.ErrExist, backends.ErrPrecondition)
		}
		if !errors.Is(err, backends.ErrNotFound) {
			return "", err
		}
	}
	if opts.IfMatch == "" || (isETag(opts.IfMatch) && !b.weak.has(opts.IfMatch) && caps.ConditionalPut) {
		return opts.IfMatch, nil
	}
	cur, err := b.Stat(ctx, p)
	if errors.Is(err, backends.ErrNotFound) {
		return "", fmt.Errorf("PUT %s: %w: the file is gone", display(p), backends.ErrPrecondition)
	}
	if err != nil {
		return "", err
	}
	if cur.Version != opts.IfMatch {
		return "", fmt.Errorf("PUT %s: %w: version %s is now %s", display(p), backends.ErrPrecondition, opts.IfMatch, cur.Version)
	}
	if !isETag(cur.Version) || b.weak.has(cur.Version) || !caps.ConditionalPut {
		return "", nil
	}
	return cur.Version, nil
}

// isWeak reports whether an ETag is weak (W/"…").
func isWeak(tag string) bool { return strings.HasPrefix(tag, "W/") }

// opaqueTag strips the weakness indicator, for weak comparison.
func opaqueTag(tag string) string { return strings.TrimPrefix(tag, "W/") }

// isETag reports whether a Version is an ETag of the server (not a
// StatVersion made up for a server without them).
func isETag(v string) bool { return strings.HasPrefix(v, `"`) }

// weakTags remembers the ETags a server gave as weak, without their W/:
// Versions carry none, and an If-Match with such a tag would fail under
// the strong comparison. A tag is weak only in the first moments of a
// version (Apache: a second), so a tag seen strong is never weak later;
// the set forgets a tag once seen strong. Past maxWeakTags it stops
// counting and treats every tag as weak (one PROPFIND more per upload).
type weakTags struct {
	mu       sync.Mutex
	tags     map[string]struct{}
	overflow bool
}

const maxWeakTags = 1 << 16

func (w *weakTags) note(etag string) {
	if etag == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !isWeak(etag) {
		delete(w.tags, etag)
		return
	}
	if w.tags == nil {
		w.tags = map[string]struct{}{}
	}
	if len(w.tags) >= maxWeakTags {
		w.overflow, w.tags = true, nil
		return
	}
	w.tags[opaqueTag(etag)] = struct{}{}
}

func (w *weakTags) has(version string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.tags[version]
	return ok || w.overflow
}

// lockedWaits are the pauses before a PUT refused with 423 Locked is sent
// again, when nothing of its body was read yet. The lock is most often one
// the server still holds for an upload of the same file that was just
// aborted (x/net/webdav, so rclone, locks a path for the length of each
// PUT, and notices a broken connection a moment later).
var lockedWaits = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}

// put sends the PUT itself.
func (b *Backend) put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions, ifMatch string, caps backends.Capabilities) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	guard := newStallGuard(b.timeout, cancel)
	defer guard.disarm()
	if r == nil {
		r = strings.NewReader("")
	}
	if size == 0 {
		// Sent without a body, so the source is checked to be empty first.
		if err := sourceEnds(r, 0); err != io.EOF {
			return fmt.Errorf("PUT %s: reading the data to upload: %w", display(p), err)
		}
	}
	for attempt := 0; ; attempt++ {
		body := &putBody{r: r, guard: guard, size: size, remaining: size}
		req, err := b.putRequest(pctx, p, body, opts, ifMatch)
		if err != nil {
			return err
		}
		resp, err := b.putClient.Do(req)
		guard.disarm()
		if re := (*RedirectError)(nil); errors.As(err, &re) {
			re.Method, re.Path = "PUT", p
			if loc, lerr := url.Parse(re.Location); lerr == nil && b.isSlashTarget(loc, p) {
				// Apache redirects a PUT onto a collection
				return fmt.Errorf("PUT %s: %w (HTTP %s)", display(p), backends.ErrIsDir, re.Status)
			}
			return re
		}
		if err != nil {
			b.log.Debug("webdav request failed", "method", "PUT", "path", display(p), "err", err)
			if serr := body.sourceError(); serr != nil {
				return fmt.Errorf("PUT %s: reading the data to upload: %w", display(p), serr)
			}
			return b.netError("PUT", p, guard.explain(err))
		}
		b.log.Debug("webdav request", "method", "PUT", "path", display(p), "status", resp.StatusCode)
		if resp.StatusCode == http.StatusLocked && attempt < len(lockedWaits) && body.drop() {
			drain(resp)
			if err := sleep(pctx, lockedWaits[attempt]); err != nil {
				return b.netError("PUT", p, err)
			}
			continue
		}
		if resp.StatusCode == http.StatusRequestEntityTooLarge {
			b.oc.noteRefused(size)
			if body.drop() {
				drain(resp)
				return &refusedUnread{statusError("PUT", p, resp)}
			}
		}
		err = b.putReply(ctx, p, resp, opts)
		drain(resp)
		return err
	}
}

// UploadPrefix starts the temporary name of an upload that is moved onto
// its file when complete (see Put). Such names are never listed.
const UploadPrefix = ".cloudmount-upload-"

// putViaTemp uploads to a temporary name beside p and moves it onto p once
// opts' condition holds (see Put). The temporary file is deleted whatever
// fails.
func (b *Backend) putViaTemp(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions, caps backends.Capabilities) error {
	tmp := uploadTempName(p, opts.Meta.SHA256)
	plain := backends.PutOptions{Meta: opts.Meta}
	if err := b.put(ctx, tmp, r, size, plain, "", caps); err != nil {
		b.deleteTemp(ctx, tmp)
		return err
	}
	if opts.IfMatch != "" {
		// The second check, as close to the MOVE as the protocol allows.
		if _, err := b.checkPrecondition(ctx, p, backends.PutOptions{IfMatch: opts.IfMatch}, backends.Capabilities{}); err != nil {
			b.deleteTemp(ctx, tmp)
			return err
		}
	}
	resp, err := b.move(ctx, tmp, p, false, !opts.IfNoneMatch)
	if err != nil {
		b.deleteTemp(ctx, tmp)
		return err
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent, http.StatusOK:
		return nil
	}
	b.deleteTemp(ctx, tmp)
	if resp.StatusCode == http.StatusPreconditionFailed && opts.IfNoneMatch {
		return fmt.Errorf("%w %w", statusErrorAs("PUT", p, resp, backends.ErrExist), backends.ErrPrecondition)
	}
	if b.kindOf(ctx, p) == kindDir {
		return fmt.Errorf("PUT %s: %w", display(p), backends.ErrIsDir)
	}
	return statusError("PUT", p, resp)
}

// uploadTempName is the temporary name of an upload of content with
// SHA-256 sum to p: named after both, so that the next attempt of an upload
// cut off by a crash replaces what the first left, and uploads of other
// content never share one. Without a hash it is random.
func uploadTempName(p, sum string) string {
	var id [8]byte
	if sum == "" {
		_, _ = rand.Read(id[:])
	} else {
		h := sha256.Sum256([]byte(path.Base(p) + "\x00" + strings.ToLower(sum)))
		copy(id[:], h[:])
	}
	return path.Join(parentOf(p), UploadPrefix+hex.EncodeToString(id[:]))
}

// deleteTemp deletes the temporary file of an upload, even when ctx is
// done; a failure is logged only.
func (b *Backend) deleteTemp(ctx context.Context, tmp string) {
	ctx, cancel := b.callContext(context.WithoutCancel(ctx))
	defer cancel()
	resp, err := b.call(ctx, &request{method: "DELETE", path: tmp})
	if err == nil {
		drain(resp)
		if resp.StatusCode < 300 || resp.StatusCode == http.StatusNotFound {
			return
		}
		err = statusError("DELETE", tmp, resp)
	}
	b.log.Warn("webdav: the temporary file of an upload could not be deleted", "path", display(tmp), "err", err)
}

// putRequest builds the request of one attempt at a PUT of body.
func (b *Backend) putRequest(ctx context.Context, p string, body *putBody, opts backends.PutOptions, ifMatch string) (*http.Request, error) {
	var rd io.Reader = body
	if body.size == 0 {
		rd = http.NoBody
	}
	req, err := b.newRequest(ctx, http.MethodPut, b.urlFor(p, false), rd)
	if err != nil {
		return nil, err
	}
	if body.size != 0 {
		req.ContentLength = body.size
		// Lets the transport retry on a dead idle connection, as long as
		// nothing of the body was consumed yet.
		req.GetBody = func() (io.ReadCloser, error) {
			if body.started() {
				return nil, errors.New("upload body already consumed")
			}
			return body, nil
		}
	}
	if body.size < 0 || body.size >= expectContinueMin {
		req.Header.Set("Expect", "100-continue")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if opts.IfNoneMatch {
		req.Header.Set("If-None-Match", "*")
	}
	if b.ocMtime.Load() && opts.Meta.MTime != nil {
		req.Header.Set("X-OC-Mtime", strconv.FormatInt(opts.Meta.MTime.Unix(), 10))
	}
	// The hash is of exactly the bytes sent (validateMeta checked its
	// form); which servers get it is the probe's call (probeChecksum).
	if opts.Meta.SHA256 != "" && b.sendsChecksum() {
		req.Header.Set(ocChecksumHeader, "SHA256:"+strings.ToLower(opts.Meta.SHA256))
	}
	return req, nil
}

// putReply maps the reply to a PUT of p.
func (b *Backend) putReply(ctx context.Context, p string, resp *http.Response, opts backends.PutOptions) error {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	case http.StatusPreconditionFailed:
		if opts.IfNoneMatch {
			return fmt.Errorf("%w %w", statusErrorAs("PUT", p, resp, backends.ErrExist), backends.ErrPrecondition)
		}
	}
	return b.putRefused(ctx, p, statusError("PUT", p, resp))
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tooLarge explains a PUT of p (size bytes) that the server refused with
// 413: what limits such uploads and what to do. err is the refusal, which
// may name the temporary name of the upload rather than p.
func tooLarge(p string, size int64, err error) error {
	what := "this upload"
	if size >= 0 {
		what = fmt.Sprintf("uploads of %d bytes", size)
	}
	status := "413"
	if he := (*HTTPError)(nil); errors.As(err, &he) {
		status = he.Status
	}
	return fmt.Errorf("PUT %s: %w: the server refuses %s (HTTP %s); raise its limit on request bodies "+
		"(Apache: LimitRequestBody; nginx: client_max_body_size; PHP: upload_max_filesize and post_max_size) "+
		"or keep files below it; the file stays queued here and is sent again at the next mount",
		display(p), backends.ErrTooLarge, what, status)
}
