package webdav

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"sync/atomic"
)

// ocState is what the probe found of an ownCloud or Nextcloud server, and
// the state of chunked uploads to it.
type ocState struct {
	chunkSize int64                       // Config.ChunkSize or DefaultChunkSize
	server    atomic.Pointer[chunkTarget] // set by the probe when chunked uploads are used
	// refused is the smallest body a PUT was refused with 413 for (0:
	// none yet); chunks stay below it.
	refused atomic.Int64
	// moveIfMatchIgnored: the server answered 412 to the If-Match of a
	// chunk assembly although the file had that version (it compares the
	// condition with the upload, not the file): later assemblies go
	// without If-Match, with the check by PROPFIND just before.
	moveIfMatchIgnored atomic.Bool
}

// chunkTarget is where chunked uploads go.
type chunkTarget struct {
	filesRoot string // escaped URL path of the mount root below BASE/remote.php/dav/files/USERID/ (trailing slash)
	uploads   string // escaped URL path of BASE/remote.php/dav/uploads/USERID/ (trailing slash)
}

// probeNextcloud recognises ownCloud and Nextcloud by the mount URL, asks
// status.php and the capabilities which it is and whether it offers
// chunked uploads, and turns them on for Nextcloud. Nothing it finds is an
// error: a reply that does not parse costs the chunked uploads, with a note
// and a log line.
func (b *Backend) probeNextcloud(ctx context.Context, note func(string, ...any)) {
	u, ok := parseOCURL(b.rootEscaped)
	if !ok {
		return
	}
	st, err := b.ocStatus(ctx, u)
	if err != nil {
		b.log.Warn("webdav: status.php of an ownCloud/Nextcloud URL gave no usable answer", "server", b.String(), "err", err)
		note("ownCloud/Nextcloud: status.php gave no usable answer (%v); no chunked uploads", err)
		return
	}
	switch {
	case !st.Installed:
		note("%s: status.php says the server is not installed", st.product())
	case st.Maintenance:
		note("%s: status.php says the server is in maintenance mode", st.product())
	}
	chunking, err := b.ocChunking(ctx, u)
	if err != nil {
		b.log.Warn("webdav: the capabilities of ownCloud/Nextcloud gave no usable answer", "server", b.String(), "err", err)
		note("%s: the OCS capabilities gave no usable answer (%v); no chunked uploads", st.product(), err)
		return
	}
	if chunking == "" {
		note("%s: no chunked uploads offered (capabilities: no dav.chunking); a file above the server's upload limit is refused (HTTP 413)", st.product())
		return
	}
	if !st.isNextcloud() {
		note("%s: chunked uploads offered (dav.chunking %s) but not used: cloudmount sends chunks by Nextcloud's rules (chunking v2) only", st.product(), chunking)
		return
	}
	if u.user == "" {
		u.user, err = b.currentUser(ctx)
		if err != nil {
			b.log.Warn("webdav: the server did not name the user's id", "server", b.String(), "err", err)
			note("%s: dav.chunking %s offered, but the user id is unknown (%v); no chunked uploads", st.product(), chunking, err)
			return
		}
	}
	user := escapePath(u.user)
	b.oc.server.Store(&chunkTarget{
		filesRoot: u.base + "/remote.php/dav/files/" + user + "/" + u.sub,
		uploads:   u.base + "/remote.php/dav/uploads/" + user + "/",
	})
	note("%s: chunked uploads (dav.chunking %s, v2): files above %d bytes, or refused with 413, go up in chunks of %d bytes "+
		"to /remote.php/dav/uploads/%s/, and an upload cut off resumes with the chunks the server holds",
		st.product(), chunking, b.oc.chunkSize, b.oc.chunkSize, user)
}

// ocGet fetches BASE + rel (an escaped path and query) with the headers
// hdr, and returns at most max bytes of a 200 reply.
func (b *Backend) ocGet(ctx context.Context, u ocURL, rel string, hdr http.Header, max int64) ([]byte, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	req, err := b.newRequest(ctx, http.MethodGet, b.origin+u.base+rel, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.send(req, rel)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", rel, backendsStatus(resp))
	}
	data, err := readBounded(resp.Body, max)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rel, err)
	}
	return data, nil
}

// backendsStatus is the status line of resp for messages, bounded.
func backendsStatus(resp *http.Response) string {
	if resp.Status == "" {
		return fmt.Sprintf("%d", resp.StatusCode)
	}
	return shorten(resp.Status, 64)
}

// ocStatus asks BASE/status.php.
func (b *Backend) ocStatus(ctx context.Context, u ocURL) (ocStatus, error) {
	data, err := b.ocGet(ctx, u, "/status.php", nil, maxStatusBytes)
	if err != nil {
		return ocStatus{}, err
	}
	st, err := parseStatus(data)
	if err != nil {
		return ocStatus{}, fmt.Errorf("status.php: %w", err)
	}
	return st, nil
}

// ocChunking asks the OCS capabilities for dav.chunking.
func (b *Backend) ocChunking(ctx context.Context, u ocURL) (string, error) {
	const rel = "/ocs/v1.php/cloud/capabilities?format=json"
	data, err := b.ocGet(ctx, u, rel, http.Header{"Ocs-Apirequest": {"true"}}, maxCapabilitiesBytes)
	if err != nil {
		return "", err
	}
	c, err := parseCapabilities(data)
	if err != nil {
		return "", fmt.Errorf("capabilities: %w", err)
	}
	return c, nil
}

// propfindPrincipalBody asks for the principal of the logged-in user.
const propfindPrincipalBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>`

// maxPrincipalBytes bounds the reply that names the user's principal.
const maxPrincipalBytes = 64 << 10

// currentUser asks the root for {DAV:}current-user-principal and returns
// the user id it names.
func (b *Backend) currentUser(ctx context.Context) (string, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "PROPFIND", dir: true, depth: "0", body: propfindPrincipalBody})
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusMultiStatus {
		return "", statusError("PROPFIND", "", resp)
	}
	data, err := readBounded(resp.Body, maxPrincipalBytes)
	if err != nil {
		return "", err
	}
	return parsePrincipal(data)
}

// parsePrincipal takes the user id out of a multistatus reply to
// propfindPrincipalBody: the href of the first current-user-principal
// that came back with a 2xx status.
func parsePrincipal(data []byte) (string, error) {
	var ms struct {
		Responses []struct {
			Propstats []struct {
				Status string `xml:"DAV: status"`
				Href   string `xml:"DAV: prop>current-user-principal>href"`
			} `xml:"DAV: propstat"`
		} `xml:"DAV: response"`
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&ms); err != nil {
		return "", fmt.Errorf("%w: current-user-principal: %v", errBadReply, err)
	}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstats {
			if !is2xx(parseStatusLine(ps.Status)) || ps.Href == "" {
				continue
			}
			if user := principalUser(ps.Href); user != "" {
				return user, nil
			}
			return "", fmt.Errorf("%w: current-user-principal %q names no user", errBadReply, shorten(ps.Href, 80))
		}
	}
	return "", fmt.Errorf("%w: no current-user-principal", errBadReply)
}
