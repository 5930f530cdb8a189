package webdav

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cloudmount/cloudmount/backends"
)

// ownCloud and Nextcloud serve WebDAV below BASE/remote.php/: the legacy
// endpoint BASE/remote.php/webdav/ (the user's files, whoever logs in)
// and BASE/remote.php/dav/files/USERID/. The user id is not always the
// login name (LDAP, e-mail logins), so for the legacy form it is asked of
// the server ({DAV:}current-user-principal). Chunked uploads need the
// second form: the upload collections are BASE/remote.php/dav/uploads/USERID/.

// remotePHP is the path element that marks an ownCloud or Nextcloud URL.
const remotePHP = "/remote.php/"

// ocURL is what the mount URL says of an ownCloud or Nextcloud server.
type ocURL struct {
	base   string // escaped path before /remote.php/ ("" or "/nextcloud")
	legacy bool   // the URL is BASE/remote.php/webdav/…
	user   string // the user id of a dav/files URL (decoded); "" for legacy
	sub    string // escaped path of the mount root below the user's files, "" or "a/b/"
}

// parseOCURL recognises the two URL forms in an escaped root path (with its
// trailing slash). ok is false for anything else, including other
// remote.php endpoints (public links, CalDAV).
func parseOCURL(rootEscaped string) (u ocURL, ok bool) {
	i := strings.Index(rootEscaped, remotePHP)
	if i < 0 {
		return u, false
	}
	u.base = rootEscaped[:i]
	rest := rootEscaped[i+len(remotePHP):]
	switch {
	case strings.HasPrefix(rest, "webdav/"):
		u.legacy, u.sub = true, rest[len("webdav/"):]
		return u, true
	case strings.HasPrefix(rest, "dav/files/"):
		rest = rest[len("dav/files/"):]
		seg, sub, found := strings.Cut(rest, "/")
		if !found || seg == "" {
			return u, false
		}
		user, err := url.PathUnescape(seg)
		if err != nil || !validUserID(user) {
			return u, false
		}
		u.user, u.sub = user, sub
		return u, true
	}
	return u, false
}

// validUserID accepts what a user id may be in a URL path element: not
// empty, not . or .., no slash or control character, at most 255 bytes.
func validUserID(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '/' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// principalUser takes the user id out of the href of a
// {DAV:}current-user-principal ("/remote.php/dav/principals/users/ID/",
// escaped or not); "" when the href is not of that form.
func principalUser(href string) string {
	if u, err := url.Parse(strings.TrimSpace(href)); err == nil {
		href = u.EscapedPath()
	}
	_, rest, ok := strings.Cut(href, "/principals/users/")
	if !ok {
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	user, err := url.PathUnescape(seg)
	if err != nil || !validUserID(user) {
		return ""
	}
	return user
}

// Limits on the replies of status.php and the capabilities endpoint: a
// real one is a few hundred bytes and a few tens of kilobytes.
const (
	maxStatusBytes       = 16 << 10
	maxCapabilitiesBytes = 1 << 20
	maxInfoString        = 128 // a version, a product name, a chunking version
)

// ocStatus is the part of BASE/status.php that the probe uses.
type ocStatus struct {
	Installed     bool
	Maintenance   bool
	Version       string // "28.0.4.1"
	VersionString string // "28.0.4"
	ProductName   string // "Nextcloud", "ownCloud"
}

// errBadReply marks a reply of status.php or the capabilities endpoint that
// does not have the expected form.
var errBadReply = errors.New("malformed reply")

// readBounded reads all of r, failing when it holds more than max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", errBadReply, max)
	}
	return data, nil
}

// decodeStrict decodes one JSON value of data into v: the types must be
// those of v, nothing but white space may follow it. Unknown fields are
// ignored (servers add fields between versions).
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not UTF-8", errBadReply)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadReply, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", errBadReply)
	}
	return nil
}

// infoString checks a string taken from a reply: short, printable.
func infoString(what, s string) (string, error) {
	if len(s) > maxInfoString {
		return "", fmt.Errorf("%w: %s is %d bytes long", errBadReply, what, len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return "", fmt.Errorf("%w: %s holds a control character", errBadReply, what)
		}
	}
	return s, nil
}

// parseStatus parses the body of status.php: an object whose installed
// and maintenance are booleans and whose version, versionstring and
// productname are strings. installed and version must be there.
func parseStatus(data []byte) (ocStatus, error) {
	var raw struct {
		Installed     *bool   `json:"installed"`
		Maintenance   *bool   `json:"maintenance"`
		Version       *string `json:"version"`
		VersionString *string `json:"versionstring"`
		ProductName   *string `json:"productname"`
	}
	if err := decodeStrict(data, &raw); err != nil {
		return ocStatus{}, err
	}
	if raw.Installed == nil || raw.Version == nil {
		return ocStatus{}, fmt.Errorf("%w: no installed or version", errBadReply)
	}
	st := ocStatus{Installed: *raw.Installed, Maintenance: raw.Maintenance != nil && *raw.Maintenance}
	var err error
	if st.Version, err = infoString("version", *raw.Version); err != nil {
		return ocStatus{}, err
	}
	if _, ok := versionMajor(st.Version); !ok {
		return ocStatus{}, fmt.Errorf("%w: version %q is not a version number", errBadReply, st.Version)
	}
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"versionstring", raw.VersionString, &st.VersionString}, {"productname", raw.ProductName, &st.ProductName}} {
		if f.src == nil {
			continue
		}
		if *f.dst, err = infoString(f.name, *f.src); err != nil {
			return ocStatus{}, err
		}
	}
	return st, nil
}

// versionMajor is the first number of a dotted version ("28.0.4.1": 28).
func versionMajor(v string) (int, bool) {
	parts := strings.Split(v, ".")
	if len(parts) > 8 {
		return 0, false
	}
	major := -1
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) > 7 || p[0] == '+' || p[0] == '-' {
			return 0, false
		}
		if i == 0 {
			major = n
		}
	}
	return major, major >= 0
}

// isNextcloud reports whether status.php names Nextcloud. Nextcloud
// always sends productname (which a themed instance may change);
// ownCloud 10 sends "ownCloud" and versions below 11. A version of 12 or
// more without a product name is Nextcloud (ownCloud's server stopped at
// 10).
func (s ocStatus) isNextcloud() bool {
	name := strings.ToLower(s.ProductName)
	switch {
	case strings.Contains(name, "owncloud"):
		return false
	case strings.Contains(name, "nextcloud"):
		return true
	}
	major, _ := versionMajor(s.Version)
	return major >= 12
}

// product names the server for notes: "Nextcloud 28.0.4".
func (s ocStatus) product() string {
	name := s.ProductName
	if name == "" {
		name = "ownCloud/Nextcloud"
	}
	v := s.VersionString
	if v == "" {
		v = s.Version
	}
	return name + " " + v
}

// parseCapabilities parses the OCS reply of cloud/capabilities
// (format=json) and returns ocs.data.capabilities.dav.chunking ("" when
// the server offers none). The reply must be an OCS document whose
// meta.status is "ok"; a chunking that is not a short version string is an
// error.
func parseCapabilities(data []byte) (string, error) {
	var raw struct {
		OCS *struct {
			Meta *struct {
				Status     string `json:"status"`
				StatusCode int    `json:"statuscode"`
			} `json:"meta"`
			Data *struct {
				Capabilities *struct {
					DAV *struct {
						Chunking *string `json:"chunking"`
					} `json:"dav"`
				} `json:"capabilities"`
			} `json:"data"`
		} `json:"ocs"`
	}
	if err := decodeStrict(data, &raw); err != nil {
		return "", err
	}
	if raw.OCS == nil || raw.OCS.Meta == nil || raw.OCS.Data == nil || raw.OCS.Data.Capabilities == nil {
		return "", fmt.Errorf("%w: not an OCS capabilities document", errBadReply)
	}
	if m := raw.OCS.Meta; m.Status != "ok" {
		return "", fmt.Errorf("%w: OCS status %q (code %d)", errBadReply, backends.Escape(shorten(m.Status, 32)), m.StatusCode)
	}
	dav := raw.OCS.Data.Capabilities.DAV
	if dav == nil || dav.Chunking == nil {
		return "", nil
	}
	c, err := infoString("dav.chunking", *dav.Chunking)
	if err != nil {
		return "", err
	}
	if _, ok := versionMajor(c); !ok {
		return "", fmt.Errorf("%w: dav.chunking %q is not a version", errBadReply, c)
	}
	return c, nil
}

// shorten cuts s to at most n bytes, on a rune boundary, for messages.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
