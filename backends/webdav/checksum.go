package webdav

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// OCNS is the XML namespace of ownCloud's and Nextcloud's properties.
const OCNS = "http://owncloud.org/ns"

// ocChecksumHeader carries a hash of the body with a PUT, as
// "SHA256:<hex>"; ownCloud-style servers report what they keep in
// oc:checksums.
const ocChecksumHeader = "OC-Checksum"

// msChecksums is oc:checksums. ownCloud and Nextcloud nest one
// <oc:checksum> holding a space-separated list ("SHA1:… MD5:… ADLER32:…");
// other servers put the list straight into oc:checksums. Both are read.
type msChecksums struct {
	Text  string   `xml:",chardata"`
	Items []string `xml:"http://owncloud.org/ns checksum"`
}

// sha256 is the SHA-256 the list names, lower-case, or "".
func (c *msChecksums) sha256() string {
	if s := ocSHA256(c.Text); s != "" {
		return s
	}
	for _, item := range c.Items {
		if s := ocSHA256(item); s != "" {
			return s
		}
	}
	return ""
}

// ocSHA256 finds "SHA256:<64 hex digits>" (the algorithm in any case, also
// spelled SHA-256) in a list of checksums separated by spaces or commas and
// returns the digits in lower case, or "" when there is none that parses.
func ocSHA256(list string) string {
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return isXMLSpace(r) || r == ',' }) {
		algo, sum, ok := strings.Cut(f, ":")
		if !ok || !(strings.EqualFold(algo, "SHA256") || strings.EqualFold(algo, "SHA-256")) {
			continue
		}
		if b, err := hex.DecodeString(sum); err == nil && len(b) == sha256.Size {
			return strings.ToLower(sum)
		}
	}
	return ""
}

// isXMLSpace reports whether r is white space in XML (space, tab, CR, LF).
func isXMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\n'
}

// probeContent is what the capability probe uploads.
const probeContent = "cloudmount capability probe\n"

// probeChecksum: may uploads carry OC-Checksum?
//
// The header is not harmless everywhere, so it is not sent blindly, nor to
// every server that accepts X-OC-Mtime. Nextcloud stores the value as given
// (and clears it on an upload without one) and reports it in oc:checksums,
// which lets a mount with an empty cache know the hash of every file without
// reading it. ownCloud 10 compares it with the SHA1, MD5 and ADLER32 it
// computes itself while receiving the body and answers 400 when the value is
// none of them, so a SHA256 would fail every upload there; Apache and rclone
// ignore it. The probe uploads its file once with a correct SHA256 and sends
// the header with uploads only when that succeeded.
func (b *Backend) probeChecksum(ctx context.Context, name string, note func(string, ...any)) error {
	sum := sha256.Sum256([]byte(probeContent))
	hdr := http.Header{"Oc-Checksum": {"SHA256:" + hex.EncodeToString(sum[:])}}
	resp, err := b.probePut(ctx, name, hdr)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		note("OC-Checksum: an upload with a SHA256 was refused (HTTP %s): not sent", resp.Status)
		return nil
	}
	b.ocChecksum.Store(true)
	st, err := b.probeStat(ctx, name)
	if err != nil {
		return err
	}
	if st.ocSHA256 == hex.EncodeToString(sum[:]) {
		note("OC-Checksum: SHA256 sent with uploads and reported back in oc:checksums")
	} else {
		note("OC-Checksum: accepted, sent with uploads (the server does not report a SHA256 in oc:checksums)")
	}
	return nil
}

// sendsChecksum reports whether uploads carry OC-Checksum (see probeChecksum).
func (b *Backend) sendsChecksum() bool { return b.ocChecksum.Load() }
