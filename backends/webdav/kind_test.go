package webdav

import (
	"errors"
	"net/http"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
)

// TestWrongTypeNamed: calls on the wrong type of resource, which the
// in-process servers refuse with 405, 404 or 409, fail with the error that
// names the mistake, also two levels below a file; a missing path stays
// ErrNotFound.
func TestWrongTypeNamed(t *testing.T) {
	handlers := map[string]func(t *testing.T) http.Handler{
		"memfs":     func(*testing.T) http.Handler { return memHandler("/") },
		"davserver": davserverHandler,
		"dir":       dirHandler,
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			b := connect(t, serve(t, h(t)).URL+"/")
			ctx := testContext(t)
			if err := b.Mkdir(ctx, "dir"); err != nil {
				t.Fatal(err)
			}
			putString(t, b, "file", "F")
			notDir := []error{backends.ErrNotDir, backends.ErrNotFound}
			for _, c := range []struct {
				what string
				err  error
				want []error
			}{
				{"Read of a directory", readErr(b, t, "dir"), []error{backends.ErrIsDir}},
				{"Read of the root", readErr(b, t, ""), []error{backends.ErrIsDir}},
				{"Read of a missing file", readErr(b, t, "missing"), []error{backends.ErrNotFound}},
				{"Put onto a directory", putErr(b, t, "dir"), []error{backends.ErrIsDir}},
				{"Put two levels below a file", putErr(b, t, "file/below/deeper"), notDir},
				{"Put into a missing directory", putErr(b, t, "no/such"), []error{backends.ErrNotFound}},
				{"Stat two levels below a file", stat(b, t, "file/below/deeper"), notDir},
				{"Stat of a missing file", stat(b, t, "missing"), []error{backends.ErrNotFound}},
				{"Mkdir of a file", b.Mkdir(ctx, "file"), []error{backends.ErrExist}},
				{"Mkdir of a directory", b.Mkdir(ctx, "dir"), []error{backends.ErrExist}},
				{"Mkdir two levels below a file", b.Mkdir(ctx, "file/below/deeper"), notDir},
				{"Mkdir in a missing directory", b.Mkdir(ctx, "no/such"), []error{backends.ErrNotFound}},
			} {
				if !isAny(c.err, c.want) {
					t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
				}
				if errors.Is(c.err, backends.ErrUnsupported) {
					t.Errorf("%s: %v: the server's refusal taken for something it cannot do", c.what, c.err)
				}
			}
		})
	}
}

func isAny(err error, kinds []error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}
