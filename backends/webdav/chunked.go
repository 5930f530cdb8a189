package webdav

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Chunked uploads to Nextcloud (its "chunking v2"): MKCOL of an upload
// collection BASE/remote.php/dav/uploads/USERID/ID, a PUT of each chunk to
// ID/N (N = 1…10000, in order), a MOVE of ID/.file onto the file, which the
// server assembles; DELETE of the collection gives an upload up. Every
// request names the file in a Destination header, chunk PUTs carry the
// total size in OC-Total-Length.
//
// The upload id is made from the file's path, the SHA-256 of its content,
// its size and the chunk size, so that the next attempt at the same upload
// (after a network failure, a kill -9 or a reboot of the daemon) finds the
// collection again, lists the chunks the server holds (PROPFIND Depth 1)
// and sends only those that are missing or of another size. The chunks
// stand in for a journal record of the upload's progress: the server's
// listing is the truth about what it holds, and the journal keeps the
// upload itself. A chunk the server holds is read from the source all the
// same (to hash it, and because the source is a stream), not sent. Uploads
// of content without a known hash get a random id and are not resumed.

// Chunk sizes of uploads to Nextcloud.
const (
	// DefaultChunkSize is Config.ChunkSize when it is zero.
	DefaultChunkSize = 10 << 20
	// MinChunkSize and MaxChunkSize bound the chunks (but the last) that
	// Nextcloud takes.
	MinChunkSize = 5 << 20
	MaxChunkSize = 5 << 30
	// maxChunks is the highest chunk number Nextcloud takes.
	maxChunks = 10000
)

// ChunkUploadPrefix starts the id of cloudmount's chunked uploads.
const ChunkUploadPrefix = "cloudmount-"

// chunkSizeFor is the chunk size for an upload of size bytes, or 0 when
// it goes in one PUT: the server has no chunked uploads, or the file is no
// larger than a chunk and no larger body was refused. after413: the upload
// was refused as too large, so it goes in chunks whatever its size. The
// chunks stay below the smallest body the server refused, and their number
// within maxChunks.
func (b *Backend) chunkSizeFor(size int64, after413 bool) int64 {
	if b.oc.server.Load() == nil || size <= 0 {
		return 0
	}
	c := b.oc.chunkSize
	limit := b.oc.refused.Load()
	if !after413 && size <= c && (limit == 0 || size < limit) {
		return 0
	}
	for limit > 0 && c >= limit && c > 1 {
		c = (c + 1) / 2
	}
	if least := (size + maxChunks - 1) / maxChunks; c < least {
		c = least
	}
	if c >= size && size > 1 {
		c = (size + 1) / 2
	}
	return c
}

// noteRefused remembers that a body of size bytes was refused with 413.
func (s *ocState) noteRefused(size int64) {
	for size > 0 {
		old := s.refused.Load()
		if old != 0 && old <= size {
			return
		}
		if s.refused.CompareAndSwap(old, size) {
			return
		}
	}
}

// refusedUnread is a 413 to a PUT that read nothing of its source, so
// that the same source can still go in chunks.
type refusedUnread struct{ err error }

func (e *refusedUnread) Error() string { return e.err.Error() }
func (e *refusedUnread) Unwrap() error { return e.err }

// isRefusedUnread reports whether err is a refusedUnread.
func isRefusedUnread(err error) bool {
	var ru *refusedUnread
	return errors.As(err, &ru)
}

// chunkedAfter413 sends the upload in chunks when err is a 413 that read
// nothing of r and the server takes chunks; otherwise it returns err. A
// chunk refused in turn (before anything of r was read) makes the chunks
// smaller.
func (b *Backend) chunkedAfter413(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions, ifMatch string, err error) error {
	for tries := 0; isRefusedUnread(err) && tries < 16; tries++ {
		chunk := b.chunkSizeFor(size, true)
		if chunk <= 0 {
			break
		}
		b.log.Info("webdav: the server refused an upload as too large; sending it in chunks",
			"path", display(p), "size", size, "chunk", chunk)
		err = b.putChunked(ctx, p, r, size, chunk, opts, ifMatch)
	}
	return err
}

// explainTooLarge is tooLarge, with what happens next on a server that
// takes chunks.
func (b *Backend) explainTooLarge(p string, size int64, err error) error {
	if b.oc.server.Load() == nil {
		return tooLarge(p, size, err)
	}
	limit := b.oc.refused.Load()
	return fmt.Errorf("PUT %s: %w: the server refuses request bodies of %d bytes (%v); "+
		"the file stays queued here and is sent again in chunks below that size", display(p), backends.ErrTooLarge, limit, unwrapOp(err))
}

// chunkUploadID is the id of the upload collection of content with
// SHA-256 sum (size bytes, in chunks of chunk) to the file at target (its
// escaped URL path), and whether it is made from them (resumable); without
// a hash it is random.
func chunkUploadID(target, sum string, size, chunk int64) (string, bool) {
	var id [16]byte
	if sum == "" {
		_, _ = rand.Read(id[:])
		return ChunkUploadPrefix + hex.EncodeToString(id[:]), false
	}
	h := sha256.Sum256([]byte(target + "\x00" + strings.ToLower(sum) + "\x00" +
		strconv.FormatInt(size, 10) + "\x00" + strconv.FormatInt(chunk, 10)))
	copy(id[:], h[:])
	return ChunkUploadPrefix + hex.EncodeToString(id[:]), true
}

// chunkName is the name of chunk n: its number, zero-padded to five
// digits so that the names sort in the order of the numbers as well.
func chunkName(n int64) string { return fmt.Sprintf("%05d", n) }

// chunkNumber reads a chunk name (1…10000, digits only); 0 if it is none.
func chunkNumber(name string) int64 {
	if name == "" || len(name) > 5 || strings.Trim(name, "0123456789") != "" {
		return 0
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil || n < 1 || n > maxChunks {
		return 0
	}
	return n
}

// chunkedUpload is one chunked upload of a file.
type chunkedUpload struct {
	b     *Backend
	p     string // the file, relative to the mount root
	coll  string // escaped URL path of the upload collection, no trailing slash
	dest  string // absolute URL of the file below dav/files
	size  int64
	chunk int64
	n     int64 // number of chunks
}

// putChunked uploads size bytes of r to p in chunks of chunk bytes, then
// has the server assemble them onto p once opts' condition holds (checked
// with a PROPFIND just before, and by the server through If-Match where it
// honours it on the assembly). The upload collection is kept for the next
// attempt when the failure is one of the network or the server (and the
// upload is resumable), and deleted otherwise.
func (b *Backend) putChunked(ctx context.Context, p string, r io.Reader, size, chunk int64, opts backends.PutOptions, ifMatch string) error {
	srv := b.oc.server.Load()
	if srv == nil {
		return fmt.Errorf("PUT %s: %w: chunked uploads are not available", display(p), backends.ErrUnsupported)
	}
	id, resumable := chunkUploadID(srv.filesRoot+escapePath(p), opts.Meta.SHA256, size, chunk)
	up := &chunkedUpload{b: b, p: p, coll: srv.uploads + id, dest: b.origin + srv.filesRoot + escapePath(p),
		size: size, chunk: chunk, n: (size + chunk - 1) / chunk}
	err := up.run(ctx, r, opts, ifMatch)
	if err != nil && !(resumable && keepChunks(err)) {
		up.abort(ctx)
	}
	return err
}

// keepChunks reports whether the chunks of an upload that failed with err
// are worth keeping for the next attempt: the network or the server
// failed, not the upload.
func keepChunks(err error) bool {
	if isRefusedUnread(err) || errors.Is(err, backends.ErrTooLarge) || errors.Is(err, backends.ErrPrecondition) {
		return false
	}
	return errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || httpCode(err) >= 500
}

// run sends the chunks the server lacks and assembles them.
func (up *chunkedUpload) run(ctx context.Context, r io.Reader, opts backends.PutOptions, ifMatch string) error {
	b := up.b
	held, err := up.held(ctx)
	if err != nil {
		return err
	}
	if held == nil {
		if err := up.mkcol(ctx); err != nil {
			return err
		}
	} else {
		b.log.Info("webdav: resuming a chunked upload", "path", display(up.p), "chunks", up.n, "on the server", len(held))
	}
	h := sha256.New()
	if err := up.send(ctx, io.TeeReader(r, h), held); err != nil {
		return err
	}
	if err := sourceEnds(r, up.size); err != io.EOF {
		return fmt.Errorf("PUT %s: reading the data to upload: %w", display(up.p), err)
	}
	if sum := opts.Meta.SHA256; sum != "" && hex.EncodeToString(h.Sum(nil)) != strings.ToLower(sum) {
		return fmt.Errorf("PUT %s: reading the data to upload: %w", display(up.p), errSourceHash)
	}
	if err := b.chunkPrecondition(ctx, up.p, opts); err != nil {
		return err
	}
	return up.assemble(ctx, opts, ifMatch, h)
}

// errSourceHash: the bytes read for an upload do not have the SHA-256
// given with them, so the chunks are not assembled.
var errSourceHash = errors.New("the data do not have the SHA-256 recorded for them")

// send PUTs each chunk the server does not hold with its size (held) and
// reads past the others. A 413 to the first chunk, before anything of r
// was read, stays a refusedUnread (smaller chunks can follow).
func (up *chunkedUpload) send(ctx context.Context, r io.Reader, held map[int64]int64) error {
	read := false
	for i := int64(1); i <= up.n; i++ {
		length := min(up.chunk, up.size-(i-1)*up.chunk)
		if got, ok := held[i]; ok && got == length {
			if _, err := io.CopyN(io.Discard, r, length); err != nil {
				return fmt.Errorf("PUT %s: reading the data to upload: %w", display(up.p), err)
			}
			read = true
			continue
		}
		err := up.putChunk(ctx, i, io.LimitReader(r, length), length)
		var ru *refusedUnread
		if errors.As(err, &ru) && read {
			err = ru.err
		}
		if err != nil {
			return err
		}
		read = true
	}
	return nil
}

// callURL sends one request with a small body to u (an escaped URL path of
// the server); what is p (relative to the root) names it in errors.
func (b *Backend) callURL(ctx context.Context, method, u, what string, hdr http.Header, body string) (*http.Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := b.newRequest(ctx, method, b.origin+u, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return b.send(req, what)
}

// what names the upload in messages: "big.iso (chunked upload)".
func (up *chunkedUpload) what() string { return up.p + " (chunked upload)" }

// held lists the chunks the server holds (number: size); nil when there
// is no upload collection. A collection with something else in it is
// deleted: it is not one this upload made.
func (up *chunkedUpload) held(ctx context.Context) (map[int64]int64, error) {
	b := up.b
	cctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.callURL(cctx, "PROPFIND", up.coll+"/", up.what(), http.Header{"Depth": {"1"}}, propfindTypeSizeBody)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return nil, nil
	case http.StatusMultiStatus:
	default:
		return nil, statusError("PROPFIND", up.what(), resp)
	}
	res, err := decodeMultistatus(resp.Body, b.limits)
	if err != nil {
		return nil, fmt.Errorf("PROPFIND %s: %w", display(up.what()), err)
	}
	held := map[int64]int64{}
	self := strings.TrimSuffix(up.coll, "/")
	for _, r := range res {
		if !r.found || trimSlash(r.path) == trimSlash(unescapeOr(self)) {
			continue
		}
		n := chunkNumber(path.Base(trimSlash(r.path)))
		if n == 0 || n > up.n || r.isDir {
			b.log.Warn("webdav: an upload collection holds what this upload did not put there; starting it anew",
				"path", display(up.p), "entry", backends.Escape(shorten(r.path, 200)))
			up.abort(ctx)
			return nil, nil
		}
		held[n] = r.size
	}
	return held, nil
}

// unescapeOr is the decoded form of an escaped path (itself if it does not
// decode).
func unescapeOr(p string) string {
	if s, err := url.PathUnescape(p); err == nil {
		return s
	}
	return p
}

// propfindTypeSizeBody asks for the type and size of the chunks.
const propfindTypeSizeBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>`

// mkcol creates the upload collection.
func (up *chunkedUpload) mkcol(ctx context.Context) error {
	b := up.b
	cctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.callURL(cctx, "MKCOL", up.coll+"/", up.what(), http.Header{"Destination": {up.dest}}, "")
	if err != nil {
		return err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent:
		return nil
	}
	return statusError("MKCOL", up.what(), resp)
}

// putChunk sends chunk i (length bytes of r).
func (up *chunkedUpload) putChunk(ctx context.Context, i int64, r io.Reader, length int64) error {
	b := up.b
	what := fmt.Sprintf("%s (chunk %d of %d)", up.p, i, up.n)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	guard := newStallGuard(b.timeout, cancel)
	defer guard.disarm()
	body := &putBody{r: r, guard: guard, size: length, remaining: length}
	req, err := b.newRequest(pctx, http.MethodPut, b.origin+up.coll+"/"+chunkName(i), body)
	if err != nil {
		return err
	}
	req.ContentLength = length
	req.GetBody = func() (io.ReadCloser, error) {
		if body.started() {
			return nil, errors.New("upload body already consumed")
		}
		return body, nil
	}
	if length >= expectContinueMin {
		req.Header.Set("Expect", "100-continue")
	}
	req.Header.Set("Destination", up.dest)
	req.Header.Set("OC-Total-Length", strconv.FormatInt(up.size, 10))
	resp, err := b.putClient.Do(req)
	guard.disarm()
	if re := (*RedirectError)(nil); errors.As(err, &re) {
		re.Method, re.Path = "PUT", what
		return re
	}
	if err != nil {
		if serr := body.sourceError(); serr != nil {
			return fmt.Errorf("PUT %s: reading the data to upload: %w", display(what), serr)
		}
		return b.netError("PUT", what, guard.explain(err))
	}
	defer drain(resp)
	b.log.Debug("webdav request", "method", "PUT", "path", display(what), "status", resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	case http.StatusRequestEntityTooLarge:
		b.oc.noteRefused(length)
		if body.drop() {
			return &refusedUnread{statusError("PUT", what, resp)}
		}
	}
	return statusError("PUT", what, resp)
}

// chunkPrecondition checks opts' condition on p just before the assembly.
func (b *Backend) chunkPrecondition(ctx context.Context, p string, opts backends.PutOptions) error {
	if opts.IfNoneMatch {
		_, err := b.Stat(ctx, p)
		if err == nil {
			return fmt.Errorf("PUT %s: %w %w", display(p), backends.ErrExist, backends.ErrPrecondition)
		}
		if !errors.Is(err, backends.ErrNotFound) {
			return err
		}
	}
	if opts.IfMatch != "" {
		if _, err := b.checkPrecondition(ctx, p, backends.PutOptions{IfMatch: opts.IfMatch}, backends.Capabilities{}); err != nil {
			return err
		}
	}
	return nil
}

// assembleRate is the slowest rate at which a server is expected to
// assemble chunks: the MOVE's deadline grows with the file.
const assembleRate = 10 << 20 // bytes per second

// assemble moves ID/.file onto the file: OC-Total-Length, X-OC-Mtime and
// OC-Checksum (the SHA-256 of what was read, h) with it; If-Match with the
// version the upload replaces where the server checks it on the file.
func (up *chunkedUpload) assemble(ctx context.Context, opts backends.PutOptions, ifMatch string, h hash.Hash) error {
	b := up.b
	hdr := http.Header{
		"Destination":     {up.dest},
		"Oc-Total-Length": {strconv.FormatInt(up.size, 10)},
		"Overwrite":       {"T"},
	}
	if opts.IfNoneMatch {
		hdr.Set("Overwrite", "F")
	}
	if opts.Meta.MTime != nil {
		hdr.Set("X-OC-Mtime", strconv.FormatInt(opts.Meta.MTime.Unix(), 10))
	}
	if b.sendsChecksum() {
		hdr.Set(ocChecksumHeader, "SHA256:"+hex.EncodeToString(h.Sum(nil)))
	}
	for {
		sendIfMatch := ifMatch != "" && !b.oc.moveIfMatchIgnored.Load()
		if sendIfMatch {
			hdr.Set("If-Match", ifMatch)
		} else {
			hdr.Del("If-Match")
		}
		cctx, cancel := context.WithTimeout(ctx, b.timeout+time.Duration(up.size/assembleRate)*time.Second)
		resp, err := b.callURL(cctx, "MOVE", up.coll+"/.file", up.what(), hdr, "")
		cancel()
		if err != nil {
			return err
		}
		drain(resp)
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusNoContent, http.StatusOK:
			return nil
		case http.StatusPreconditionFailed:
			if opts.IfNoneMatch {
				return fmt.Errorf("%w %w", statusErrorAs("PUT", up.p, resp, backends.ErrExist), backends.ErrPrecondition)
			}
			if !sendIfMatch {
				break
			}
			cur, err := b.Stat(ctx, up.p)
			if err != nil || cur.Version != opts.IfMatch {
				return fmt.Errorf("PUT %s: %w: the file changed during the upload", display(up.p), backends.ErrPrecondition)
			}
			// The file has the version: the server compared If-Match
			// with something else (the upload).
			b.oc.moveIfMatchIgnored.Store(true)
			b.log.Info("webdav: the server does not check If-Match against the file when it assembles chunks; checked by PROPFIND instead",
				"server", b.String())
			continue
		}
		return statusError("MOVE", up.what(), resp)
	}
}

// abort deletes the upload collection, even when ctx is done; a failure
// is logged only (the server expires upload collections by itself).
func (up *chunkedUpload) abort(ctx context.Context) {
	b := up.b
	cctx, cancel := b.callContext(context.WithoutCancel(ctx))
	defer cancel()
	resp, err := b.callURL(cctx, "DELETE", up.coll+"/", up.what(), http.Header{"Destination": {up.dest}}, "")
	if err == nil {
		drain(resp)
		if resp.StatusCode < 300 || resp.StatusCode == http.StatusNotFound {
			return
		}
		err = statusError("DELETE", up.what(), resp)
	}
	b.log.Warn("webdav: the collection of a chunked upload could not be deleted", "path", display(up.p), "err", err)
}
