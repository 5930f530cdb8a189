package tahoe

import (
	"io"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
)

// TestContract runs the conformance suite against the fake node, each
// subtest in a fresh directory of its own, and checks that nothing it
// logged holds a cap.
func TestContract(t *testing.T) {
	f := newFakeNode(t)
	var logs syncBuffer
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, f, f.newDir(), &logs)
	})
	f.checkClean(t)
	checkNoCaps(t, f, "the log of the suite", logs.String())
}

// TestContractReadOnly runs the suite on a read-only cap.
func TestContractReadOnly(t *testing.T) {
	f := newFakeNode(t)
	var logs syncBuffer
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, f, f.readCap(f.newDir()), &logs)
	})
	f.checkClean(t)
	checkNoCaps(t, f, "the log of the suite", logs.String())
}

var _ = io.Discard
