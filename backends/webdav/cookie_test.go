package webdav

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	xwebdav "golang.org/x/net/webdav"
)

// TestSessionCookieIsSentBack checks that a session cookie handed out by the
// server (as ownCloud and Nextcloud do) comes back on later requests.
func TestSessionCookieIsSentBack(t *testing.T) {
	dav := &xwebdav.Handler{FileSystem: xwebdav.NewMemFS(), LockSystem: xwebdav.NewMemLS()}
	var withCookie, total atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total.Add(1)
		if c, err := r.Cookie("session"); err == nil && c.Value == "s1" {
			withCookie.Add(1)
		} else {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Path: "/"})
		}
		dav.ServeHTTP(w, r)
	}))
	defer srv.Close()
	b, err := New(t.Context(), Config{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 3 {
		if _, err := b.Stat(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
	}
	if withCookie.Load() != total.Load()-1 {
		t.Fatalf("%d of %d requests carried the session cookie, want all but the first", withCookie.Load(), total.Load())
	}
}
