package webdav

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNCStatus: parseStatus never panics, and what it accepts is short,
// printable text with a version number.
func FuzzNCStatus(f *testing.F) {
	f.Add([]byte(`{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"28.0.4.1","versionstring":"28.0.4","edition":"","productname":"Nextcloud","extendedSupport":false}`))
	f.Add([]byte(`{"installed":"true","version":28}`))
	f.Add([]byte(`{"installed":true,"version":"10.13.4.1","productname":"ownCloud"} x`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStatus(data)
		if err != nil {
			return
		}
		for _, s := range []string{st.Version, st.VersionString, st.ProductName} {
			if len(s) > maxInfoString || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r\x1b") {
				t.Fatalf("accepted %q", s)
			}
		}
		if _, ok := versionMajor(st.Version); !ok {
			t.Fatalf("accepted version %q", st.Version)
		}
		_ = st.product()
		_ = st.isNextcloud()
	})
}

// FuzzNCCapabilities: parseCapabilities never panics, and a chunking it
// accepts is a short version string.
func FuzzNCCapabilities(f *testing.F) {
	f.Add([]byte(`{"ocs":{"meta":{"status":"ok","statuscode":100,"message":"OK"},"data":{"version":{"major":28},"capabilities":{"dav":{"chunking":"1.0","bulkupload":"1.0"}}}}}`))
	f.Add([]byte(`{"ocs":{"meta":{"status":"ok"},"data":{"capabilities":{"dav":{"chunking":1}}}}}`))
	f.Add([]byte(`{"ocs":{"meta":{"status":"failure","statuscode":997},"data":[]}}`))
	f.Add([]byte(`{"ocs":{"meta":{"status":"ok"},"data":{"capabilities":[]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCapabilities(data)
		if err != nil || c == "" {
			return
		}
		if len(c) > maxInfoString || !utf8.ValidString(c) {
			t.Fatalf("accepted chunking %q", c)
		}
		if _, ok := versionMajor(c); !ok {
			t.Fatalf("accepted chunking %q", c)
		}
	})
}

// FuzzNCPrincipal: parsePrincipal never panics, and a user id it returns
// can be a path element.
func FuzzNCPrincipal(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/remote.php/webdav/</d:href><d:propstat><d:prop><d:current-user-principal><d:href>/remote.php/dav/principals/users/alice/</d:href></d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`))
	f.Add([]byte(`<d:multistatus xmlns:d="DAV:"><d:response><d:propstat><d:prop><d:current-user-principal><d:href>/remote.php/dav/principals/users/%2e%2e/</d:href></d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		user, err := parsePrincipal(data)
		if err != nil {
			return
		}
		if !validUserID(user) {
			t.Fatalf("accepted user id %q", user)
		}
	})
}
