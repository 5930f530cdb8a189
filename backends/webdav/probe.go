package webdav

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// probeMTime is the mtime sent with the probe upload (2009-02-13 23:31:30
// UTC): far enough from now that a server which ignores it is caught.
const probeMTime = 1234567890

// ProbePrefix starts the name of the file the capability probe writes into
// the root (and always deletes).
const ProbePrefix = ".cloudmount-probe-"

// Capabilities reports what the server can do. The first call probes the
// server with one small file in the root, deleted in all cases; later calls
// return the same answer. A server that refuses the upload (read-only) is
// not an error: it gets no write capabilities.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	return b.capabilities(ctx)
}

func (b *Backend) capabilities(ctx context.Context) (backends.Capabilities, error) {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	if b.caps == nil {
		c, err := b.probe(ctx)
		if err != nil {
			return backends.Capabilities{}, err
		}
		b.caps = &c
		b.log.Debug("webdav capabilities", "server", b.String(), "capabilities", c)
	}
	c := *b.caps
	c.Notes = append([]string(nil), c.Notes...)
	return c, nil
}

func (b *Backend) probe(ctx context.Context) (caps backends.Capabilities, err error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := ProbePrefix + hex.EncodeToString(rnd[:])
	note := func(format string, args ...any) { caps.Notes = append(caps.Notes, fmt.Sprintf(format, args...)) }

	b.removeProbeLeftovers(ctx)
	b.probeNextcloud(ctx, note)
	isDir := false // the probe ends as a collection (probeMkcol)
	defer func() { b.deleteProbe(ctx, name, isDir) }()

	hdr := http.Header{"X-Oc-Mtime": {strconv.Itoa(probeMTime)}}
	resp, err := b.probePut(ctx, name, hdr)
	if err != nil {
		return caps, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		caps.ReadOnly = true
		note("the server refused a test upload into the root (HTTP %s): treated as read-only, no write capabilities", resp.Status)
		b.probeQuota(ctx, &caps, note)
		return caps, nil
	}
	ocAccepted := strings.EqualFold(strings.TrimSpace(resp.Header.Get("X-OC-MTime")), "accepted")

	st, err := b.probeStat(ctx, name)
	if err != nil {
		return caps, err
	}
	switch {
	case ocAccepted && st.modified.Unix() == probeMTime:
		// Put stores the mtime (to the second), but nothing but an upload
		// can change it: not Stored, so the fs keeps the exact one.
		caps.MTime = backends.MetaField{OnPut: true, Precision: time.Second}
		b.ocMtime.Store(true)
		note("X-OC-Mtime: accepted; uploads carry the mtime (to the second), which only an upload can change: the exact mtime is kept in the local index")
	case ocAccepted:
		note("X-OC-Mtime: answered accepted, but getlastmodified is %s: not used", st.modified.UTC().Format(time.RFC3339))
	default:
		note("X-OC-Mtime: not accepted")
	}
	if isWeak(st.etag) {
		note("ETags: weak (%s) right after a write, as Apache gives for a second: an If-Match on a weak ETag is checked with a PROPFIND first", st.etag)
	} else if st.etag == "" {
		note("ETags: none; a version is the size and getlastmodified (to the second), so a change by another client " +
			"that keeps the size within the second of the last one is not seen")
	}

	b.probeDeadProps(ctx, name, &caps, note)
	if err := b.probeConditional(ctx, name, &caps, note); err != nil {
		return caps, err
	}
	if err := b.probeChecksum(ctx, name, note); err != nil {
		return caps, err
	}
	b.probeQuota(ctx, &caps, note)
	if err := b.probeMkcol(ctx, name, &isDir, note); err != nil {
		return caps, err
	}
	b.probeDotNames(ctx, name, &caps, note)
	return caps, nil
}

// probeDotName is the name of the file the probe puts into its collection
// to see whether listings show names that start with a dot.
const probeDotName = ".cloudmount-dot"

// probeDotNames: does a listing show a name that starts with a dot?
// (nginx's dav-ext leaves them out.) The probe collection gets such a file
// and is listed; the collection goes with its content at the end.
func (b *Backend) probeDotNames(ctx context.Context, name string, caps *backends.Capabilities, note func(string, ...any)) {
	resp, err := b.probePut(ctx, name+"/"+probeDotName, nil)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return
	}
	entries, err := b.List(ctx, name)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name == probeDotName {
			return
		}
	}
	caps.UnlistedDotNames = true
	note("listings leave out names that start with a dot: such files are stored and read, but only found by their name")
}

// probeLeftoverAge is how old a probe file or collection in the root must
// be before a mount takes it for the leftover of one that was cut off (a
// crash, a server that refused the DELETE) and removes it: far longer than
// a probe takes, so that another mount's running probe is left alone.
const probeLeftoverAge = 10 * time.Minute

// removeProbeLeftovers deletes the probe files and collections that older
// mounts left in the root. Failures are logged only: they cost a mount
// nothing.
func (b *Backend) removeProbeLeftovers(ctx context.Context) {
	entries, err := b.List(ctx, "")
	if err != nil {
		b.log.Debug("webdav: looking for old probe files failed", "server", b.String(), "err", err)
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, ProbePrefix) || time.Since(e.ModTime) < probeLeftoverAge {
			continue
		}
		if b.deleteProbe(ctx, e.Name, e.IsDir) {
			b.log.Info("webdav: removed an old probe file", "server", b.String(), "name", e.Name)
		}
	}
}

// deleteProbe deletes the probe file (or collection, dir), whatever
// happened before, even when ctx is done, and reports whether it is gone.
// A server that wants the other form (nginx refuses a DELETE of a
// collection without its trailing slash) gets it too.
func (b *Backend) deleteProbe(ctx context.Context, name string, dir bool) bool {
	ctx, cancel := b.callContext(context.WithoutCancel(ctx))
	defer cancel()
	for _, d := range []bool{dir, !dir} {
		resp, err := b.call(ctx, &request{method: "DELETE", path: name, dir: d})
		if err != nil {
			break
		}
		drain(resp)
		switch resp.StatusCode {
		case http.StatusOK, http.StatusNoContent, http.StatusAccepted, http.StatusNotFound:
			return true
		}
	}
	b.log.Warn("webdav: the probe file could not be deleted; it is removed at a later mount", "server", b.String(), "name", name)
	return false
}

// probeMkcol: does MKCOL on an existing collection fail, as RFC 4918 says?
// (rclone's answers 201.) The probe name is reused for a collection, which
// isDir then says.
func (b *Backend) probeMkcol(ctx context.Context, name string, isDir *bool, note func(string, ...any)) error {
	b.deleteProbe(ctx, name, false)
	*isDir = true
	if _, err := b.mkcol(ctx, name); err != nil {
		return err
	}
	status, err := b.mkcol(ctx, name)
	if err != nil {
		return err
	}
	if status >= 200 && status <= 299 {
		b.mkcolLax.Store(true)
		note("MKCOL on an existing collection succeeds here: Mkdir checks with a PROPFIND first")
	}
	return nil
}

// laxMkcol reports whether MKCOL needs a PROPFIND first (see probeMkcol).
func (b *Backend) laxMkcol() bool { return b.mkcolLax.Load() }

// probeStat is a PROPFIND of the probe file asking for cm:probe.
func (b *Backend) probeStat(ctx context.Context, name string) (resource, error) {
	return b.probePropfind(ctx, name, propfindProbeBody)
}

// probePropfind is a PROPFIND of the probe file with body, as the server
// sends its properties (before contentBound).
func (b *Backend) probePropfind(ctx context.Context, name, body string) (resource, error) {
	res, err := b.propfind(ctx, name, false, "0", body)
	if err != nil {
		return resource{}, err
	}
	self, ok := b.pickSelf(res, name)
	if !ok {
		return resource{}, fmt.Errorf("PROPFIND %s: %w: no properties for the probe file", display(name), backends.ErrProtocol)
	}
	return self, nil
}

// probePut uploads the small probe content with extra headers.
func (b *Backend) probePut(ctx context.Context, name string, hdr http.Header) (*http.Response, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.callOnce(ctx, &request{method: http.MethodPut, path: name, body: probeContent, header: hdr})
	if err != nil {
		return nil, err
	}
	drain(resp)
	return resp, nil
}

// probeMeta is the metadata the probe stores as an upload would: every
// field, so that the PROPPATCH has every property an upload or SetMeta
// sends.
func probeMeta() backends.Meta {
	mtime := time.Unix(probeMTime, 123456789)
	mode := os.FileMode(0o640)
	uid, gid := uint32(4242), uint32(4343)
	sum := sha256.Sum256([]byte(probeContent))
	return backends.Meta{MTime: &mtime, Mode: &mode, UID: &uid, GID: &gid, SHA256: hex.EncodeToString(sum[:]), Type: "fifo"}
}

// probeDeadProps: does the server keep what an upload stores with a file?
// It sends one PROPPATCH with every property (the metadata and the stamp
// cm:etag), as uploads do, reads them all back and trusts the server only
// when each came back exactly: some servers answer a PROPPATCH of several
// properties with success and keep one. Metadata is tied to the version it
// describes (cm:etag), so a server whose version changes on PROPPATCH
// cannot keep it either. Otherwise none is kept with the files: the
// mount keeps them in a metadata file per directory (package sidecar) or
// in its local index. One PROPPATCH per property might work where several
// at once lose some, but would cost every upload seven requests more; a
// metadata file per directory keeps a whole batch of uploads' metadata in
// one write.
func (b *Backend) probeDeadProps(ctx context.Context, name string, caps *backends.Capabilities, note func(string, ...any)) {
	before, err := b.probePropfind(ctx, name, propfindBody)
	if err != nil {
		note("dead properties: not used (%v); mtime, mode and owner are not kept with the files", err)
		return
	}
	set := stamped(encodeMeta(probeMeta()), backends.Entry{Version: before.version()})
	if err := b.proppatch(ctx, name, set, nil); err != nil {
		note("dead properties: not stored (%v); mtime, mode and owner are not kept with the files", err)
		return
	}
	after, err := b.probePropfind(ctx, name, propfindBody)
	if err != nil {
		note("dead properties: not used (%v); mtime, mode and owner are not kept with the files", err)
		return
	}
	if lost := lostProps(set, &after); len(lost) > 0 {
		note("dead properties: the server answered a PROPPATCH of %d properties with success but did not keep %s; "+
			"none is trusted, and mtime, mode and owner are not kept with the files", len(set), strings.Join(lost, ", "))
		return
	}
	if after.version() != before.version() {
		note("dead properties: kept, but a PROPPATCH changes the version (%s to %s), so they cannot be tied to one; "+
			"mtime, mode and owner are not kept with the files", before.version(), after.version())
		return
	}
	// Dead properties hold every field, at full precision; a PROPPATCH
	// after the PUT stores them.
	props := backends.MetaField{Stored: true}
	caps.Mode, caps.Owner, caps.Hash, caps.Type = props, props, props, props
	// With X-OC-Mtime too, Put sends the mtime with the upload as well
	// (OnPut); the dead property holds it to the nanosecond.
	caps.MTime = backends.MetaField{Stored: true, OnPut: caps.MTime.OnPut}
	note("dead properties: kept; mtime (ns), mode, owner, sha256 and file type are stored on the server")
}

// lostProps lists the properties of set that r does not hold with exactly
// the value sent.
func lostProps(set [][2]string, r *resource) []string {
	got := map[string]string{}
	for _, kv := range encodeMeta(r.meta) {
		got[kv[0]] = kv[1]
	}
	if r.stamp != nil {
		got["etag"] = *r.stamp
	}
	var lost []string
	for _, kv := range set {
		if v, ok := got[kv[0]]; !ok || v != kv[1] {
			lost = append(lost, "cm:"+kv[0])
		}
	}
	return lost
}

// probeConditional: are If-None-Match: * and If-Match honoured on PUT?
func (b *Backend) probeConditional(ctx context.Context, name string, caps *backends.Capabilities, note func(string, ...any)) error {
	inm, err := b.probePut(ctx, name, http.Header{"If-None-Match": {"*"}})
	if err != nil {
		return err
	}
	im, err := b.probePut(ctx, name, http.Header{"If-Match": {`"cloudmount-no-such-version"`}})
	if err != nil {
		return err
	}
	if inm.StatusCode == http.StatusPreconditionFailed && im.StatusCode == http.StatusPreconditionFailed {
		caps.ConditionalPut = true
		note("conditional PUT: If-None-Match and If-Match honoured")
		return nil
	}
	note("conditional PUT: the server ignores If-None-Match/If-Match (answered %d and %d); "+
		"a new file is uploaded to a temporary name and moved onto its name with Overwrite: F; "+
		"an edit is checked with a PROPFIND before the upload and again before that move, "+
		"which leaves one round trip in which another client's change is replaced", inm.StatusCode, im.StatusCode)
	return nil
}

// probeQuota: does the root answer RFC 4331 quota properties?
func (b *Backend) probeQuota(ctx context.Context, caps *backends.Capabilities, note func(string, ...any)) {
	q, known, err := b.quota(ctx)
	switch {
	case err != nil:
		note("quota: not reported (%v)", err)
	case known:
		caps.Quota = true
		note("quota: %d bytes available, %d used", q.Available, q.Used)
	default:
		note("quota: not reported (no RFC 4331 quota-available-bytes)")
	}
}
