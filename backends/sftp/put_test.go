package sftp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// TestPutSmallConditions: a small upload with its mode skips the check
// before it; the one before the rename refuses it all the same, and the
// temporary file goes.
func TestPutSmallConditions(t *testing.T) {
	b, s := newBackend(t)
	existing := put(t, b, "there.txt", "old")
	if err := os.Mkdir(filepath.Join(s.dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o600)
	for _, tc := range []struct {
		name string
		p    string
		opts backends.PutOptions
		want error
	}{
		{"create over a file", "there.txt", backends.PutOptions{IfNoneMatch: true}, backends.ErrExist},
		{"create over a directory", "dir", backends.PutOptions{IfNoneMatch: true}, backends.ErrIsDir},
		{"edit of another version", "there.txt", backends.PutOptions{IfMatch: existing.Version + "x"}, backends.ErrPrecondition},
		{"edit of a removed file", "gone.txt", backends.PutOptions{IfMatch: existing.Version}, backends.ErrPrecondition},
		{"over a directory", "dir", backends.PutOptions{}, backends.ErrIsDir},
	} {
		tc.opts.Meta.Mode = &mode
		_, err := b.Put(ctxT(t), tc.p, strings.NewReader("new"), 3, tc.opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := readAll(t, b, "there.txt", 0, -1); got != "old" {
		t.Errorf("there.txt holds %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(s.dir, UploadPrefix+"*"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary files left: %q", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
