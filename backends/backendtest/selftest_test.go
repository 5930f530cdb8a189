package backendtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
	"github.com/cloudmount/cloudmount/backends/memory"
)

// broken is a memory backend with one contract break, for checking that
// the suite sees it.
type broken struct {
	*memory.Backend
	flaw string
}

func (b *broken) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	switch b.flaw {
	case "create reports only ErrPrecondition":
		e, err := b.Backend.Put(ctx, p, r, size, opts)
		if errors.Is(err, backends.ErrExist) {
			err = fmt.Errorf("put %s: %w", p, backends.ErrPrecondition)
		}
		return e, err
	case "overwrite drops mode and owner":
		_ = b.Backend.Remove(ctx, p)
	case "IfMatch ignored":
		opts.IfMatch = ""
	case "context ignored":
		ctx = context.Background()
	}
	return b.Backend.Put(ctx, p, r, size, opts)
}

func (b *broken) Remove(ctx context.Context, p string) error {
	if b.flaw == "root removable" && strings.Trim(p, "/") == "" {
		return nil
	}
	return b.Backend.Remove(ctx, p)
}

func (b *broken) List(ctx context.Context, p string) ([]backends.Entry, error) {
	es, err := b.Backend.List(ctx, p)
	switch b.flaw {
	case "List gives the directory":
		if self, serr := b.Backend.Stat(ctx, p); serr == nil {
			es = append(es, self)
		}
	case "List drops versions and metadata":
		for i := range es {
			es[i].Version, es[i].Meta = "", backends.Meta{}
		}
	}
	return es, err
}

func (b *broken) Rename(ctx context.Context, from, to string, overwrite bool) error {
	if b.flaw == "Rename always overwrites" {
		overwrite = true
	}
	return b.Backend.Rename(ctx, from, to, overwrite)
}

func (b *broken) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	if b.flaw == "SetMeta ignores the version" {
		ifVersion = ""
	}
	return b.Backend.SetMeta(ctx, p, m, ifVersion)
}

func (b *broken) SHA256(ctx context.Context, p string) (string, error) {
	if b.flaw == "hash of nothing" {
		return "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", nil
	}
	return b.Backend.SHA256(ctx, p)
}

// flaws maps each break to a subtest that must fail because of it.
var flaws = map[string]string{
	"create reports only ErrPrecondition": "PutIfNoneMatch",
	"overwrite drops mode and owner":      "MetaOverwrite",
	"IfMatch ignored":                     "PutIfMatch",
	"context ignored":                     "CancelledContext",
	"root removable":                      "Remove",
	"List gives the directory":            "ListChildrenOnly",
	"List drops versions and metadata":    "Version",
	"Rename always overwrites":            "RenameFile",
	"SetMeta ignores the version":         "MetaSetStale",
	"hash of nothing":                     "Hasher",
}

const flawEnv = "BACKENDTEST_FLAW"

// TestBroken runs the suite on the backend with the break named in
// $BACKENDTEST_FLAW; it is run by TestSuiteSeesBreaks, not by hand.
func TestBroken(t *testing.T) {
	flaw := os.Getenv(flawEnv)
	if flaw == "" {
		t.Skip("run by TestSuiteSeesBreaks")
	}
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return &broken{Backend: memory.New(), flaw: flaw}
	})
}

// TestSuiteSeesBreaks checks that the suite fails each broken backend in
// the subtest meant to catch its break, and passes the unbroken one there.
func TestSuiteSeesBreaks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary once per break")
	}
	for flaw, subtest := range flaws {
		t.Run(flaw, func(t *testing.T) {
			t.Parallel()
			run := func(flaw string) (string, error) {
				cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBroken$/^"+subtest+"$", "-test.v")
				cmd.Env = append(os.Environ(), flawEnv+"="+flaw)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := run(flaw)
			if err == nil || !strings.Contains(out, "--- FAIL: TestBroken/"+subtest) {
				t.Errorf("the suite did not fail %s on a backend whose %s (%v):\n%s", subtest, flaw, err, out)
			}
			if out, err := run("none"); err != nil || !strings.Contains(out, "--- PASS: TestBroken/"+subtest) {
				t.Errorf("the suite failed %s on the unbroken backend (%v):\n%s", subtest, err, out)
			}
		})
	}
}
