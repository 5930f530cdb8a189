package mountutil

import (
	"os"
	"strings"
	"testing"
)

func TestCheckFUSESaysWhatIsMissing(t *testing.T) {
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		if err := CheckFUSE(); err == nil || !strings.Contains(err.Error(), "/dev/fuse") {
			t.Fatalf("CheckFUSE() without a usable /dev/fuse: %v", err)
		}
		return
	} else {
		f.Close()
	}
	if err := CheckFUSE(); err != nil {
		t.Fatalf("CheckFUSE() on a machine with FUSE: %v", err)
	}
	old := fusermountNames
	t.Cleanup(func() { fusermountNames = old })
	fusermountNames = []string{"/nonexistent/fusermount3"}
	err := CheckFUSE()
	if err == nil || !strings.Contains(err.Error(), "fusermount3 not found: install fuse3 (apt-get install fuse3)") {
		t.Fatalf("CheckFUSE() without fusermount3: %v", err)
	}
}
