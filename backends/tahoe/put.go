package tahoe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Put stores the file at p: the content is uploaded as an immutable file
// (PUT /uri, which gives its cap), then linked into the parent with its
// metadata in one change (POST ?t=set_children), so that the file appears
// whole and at once, with its metadata (AtomicPut). Links of uploads into
// the same directory that finish while one is under way share the next
// set_children (batch.go); each Put still gets its own result. The mode and owner of
// a file it replaces stay; opts.InPlace is ignored (a CHK file is never
// changed in place).
//
// Conditions: IfNoneMatch links with replace=false, which the node checks
// in the same change (a clash fails with ErrExist and ErrPrecondition).
// IfMatch is checked on a listing before the upload and again right
// before the link: Tahoe has no test-and-set, so a change by another
// client in the moment between that listing and the link is not seen
// (the single-writer rule). A failed condition leaves the uploaded content
// unlinked on the grid, where it keeps its space until its leases expire.
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	p = cleanPath(p)
	if err := b.beginChange(ctx, "put", p); err != nil {
		return backends.Entry{}, err
	}
	if p == "" {
		return backends.Entry{}, opError("put", p, backends.ErrIsDir, "")
	}
	if err := validateMeta(opts.Meta); err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", display(p), err)
	}
	_, name := splitPath(p)
	if err := checkName("put", p, name); err != nil {
		return backends.Entry{}, err
	}
	lk, err := b.lookup(ctx, "put", p)
	if err != nil {
		return backends.Entry{}, err
	}
	if _, err := lk.writable("put", p); err != nil {
		return backends.Entry{}, err
	}
	if err := b.putAllowed(ctx, p, lk.child, opts); err != nil {
		return backends.Entry{}, err
	}
	cap, n, err := b.upload(ctx, p, r, size)
	if err != nil {
		return backends.Entry{}, err
	}
	if opts.IfMatch != "" {
		// Once more right before the link: the upload may have taken long.
		if lk, err = b.lookup(ctx, "put", p); err != nil {
			return backends.Entry{}, err
		}
		if err := b.putAllowed(ctx, p, lk.child, opts); err != nil {
			return backends.Entry{}, err
		}
	}
	dirRW, err := lk.writable("put", p)
	if err != nil {
		return backends.Entry{}, err
	}
	fn := &node{kind: "filenode", size: n, ro: cap}
	version := fileVersion(fn)
	target := name
	var old *node
	if lk.child != nil {
		target, old = lk.child.name, &lk.child.node
	}
	meta := putMeta(old, version, opts.Meta, time.Now())
	replace := "only-files"
	if opts.IfNoneMatch {
		replace = "false"
	}
	err = b.linkBatched(ctx, "put", p, dirRW, target, fn, meta, replace, func(ctx context.Context) bool {
		lk, err := b.lookup(ctx, "put", p)
		return err == nil && lk.child != nil && lk.child.kind == "filenode" && !lk.child.mutable && lk.child.ro == cap
	})
	if err != nil {
		if errors.Is(err, backends.ErrExist) {
			if opts.IfNoneMatch {
				return backends.Entry{}, opErrorAll("put", p, []error{backends.ErrExist, backends.ErrPrecondition},
					"another client created the file meanwhile")
			}
			return backends.Entry{}, opError("put", p, backends.ErrIsDir, "another client made a directory of it meanwhile")
		}
		return backends.Entry{}, err
	}
	fn.meta = meta.marshal()
	b.caps.remember(fn)
	return entryOf(name, fn)
}

// putAllowed checks what is at p (cur, nil for nothing) against the
// conditions of opts.
func (b *Backend) putAllowed(ctx context.Context, p string, cur *child, opts backends.PutOptions) error {
	if cur == nil {
		if opts.IfMatch != "" {
			return opError("put", p, backends.ErrPrecondition, "the file is gone")
		}
		return nil
	}
	switch cur.kind {
	case "dirnode":
		return opErrorAll("put", p, []error{backends.ErrIsDir}, "%s is a directory", display(p))
	case "filenode":
	default:
		return opError("put", p, backends.ErrUnsupported, "%v is at that name", errUnknownNode)
	}
	if opts.IfNoneMatch {
		return opErrorAll("put", p, []error{backends.ErrExist, backends.ErrPrecondition}, "the file exists")
	}
	if opts.IfMatch != "" {
		if err := b.fillSize(ctx, "put", p, &cur.node); err != nil {
			return err
		}
		if v := fileVersion(&cur.node); v != opts.IfMatch {
			return opError("put", p, backends.ErrPrecondition, "version %s is now %s", opts.IfMatch, v)
		}
	}
	return nil
}

// upload sends the content to the node as an unlinked immutable file
// (PUT /uri?format=CHK) and returns its cap and size. The node stores the
// whole body, then encodes it and sends the shares to the grid, and only
// then answers: the body must keep moving (no pause of the timeout while
// it is sent), and the reply may then take the time replyWait allows.
func (b *Backend) upload(ctx context.Context, p string, r io.Reader, size int64) (string, int64, error) {
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &transfer{guard: newStallGuard(b.timeout, cancel), cancel: cancel}
	defer t.stop()
	if r == nil {
		r = strings.NewReader("")
	}
	body := &uploadBody{r: r, size: size, t: t, wait: b.replyWait}
	var rd io.Reader = body
	if size == 0 {
		// Sent without a body, so the source is checked to be empty first.
		if err := sourceEnds(r, 0); err != io.EOF {
			return "", 0, fmt.Errorf("put %s: reading the data to upload: %w", display(p), err)
		}
		rd = http.NoBody
		body.done.Store(true)
		t.waitReply(b.replyWait(0))
	}
	req0 := &request{method: http.MethodPut, op: "upload", shown: p, query: url.Values{"format": {"CHK"}}}
	req, err := b.newRequest(uctx, req0, rd)
	if err != nil {
		return "", 0, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	if size != 0 {
		// Lets the transport retry on a dead idle connection, as long as
		// nothing of the body was read.
		req.GetBody = func() (io.ReadCloser, error) {
			if body.started.Load() {
				return nil, errors.New("upload body already read")
			}
			return body, nil
		}
	}
	t.guard.arm()
	resp, err := b.client.Do(req)
	t.guard.disarm()
	if err != nil {
		if serr := body.sourceError(); serr != nil {
			return "", 0, fmt.Errorf("put %s: reading the data to upload: %w", display(p), serr)
		}
		nerr := b.netError(req0, t.explain(err))
		b.log.Debug("tahoe request failed", "method", "PUT", "op", "upload", "err", nerr)
		return "", 0, nerr
	}
	b.log.Debug("tahoe request", "method", "PUT", "op", "upload", "status", resp.StatusCode, "bytes", body.n.Load())
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return "", 0, replyError(req0, resp)
	}
	reply, err := readSmall(resp)
	if err != nil {
		return "", 0, b.netError(req0, t.explain(err))
	}
	if !body.done.Load() {
		return "", 0, opError("put", p, backends.ErrProtocol, "the node answered before the whole upload was sent")
	}
	n := body.n.Load()
	cap := strings.TrimSpace(string(reply))
	if err := checkUploadCap(cap, n); err != nil {
		return "", 0, opError("put", p, backends.ErrProtocol, "the node's answer to the upload %v", err)
	}
	return cap, n, nil
}

// checkUploadCap checks the reply of an upload of n bytes: the cap of an
// immutable file of that size. The error never quotes the cap.
func checkUploadCap(cap string, n int64) error {
	kind, _, ok := capKind(cap)
	switch {
	case !ok || strings.ContainsAny(cap, " \t\r\n/"):
		return errors.New("is not a capability")
	case kind == "LIT":
		return nil // the data itself, ≤ 55 bytes
	case kind != "CHK":
		return fmt.Errorf("is a capability of kind %s, not of an immutable file", kind)
	}
	fields := strings.Split(cap, ":")
	if got, err := strconv.ParseInt(fields[len(fields)-1], 10, 64); err != nil || got != n {
		return fmt.Errorf("is the capability of a file of another size than the %d bytes sent", n)
	}
	return nil
}
