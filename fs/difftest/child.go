package difftest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// A process that serves a FUSE mount must not touch a mapping of a file
// on it: the page fault blocks a thread outside a system call, and the Go
// runtime's next stop-the-world waits for it forever while the FUSE server
// waits for the world. Tests that mount in-process therefore run the mmap
// operation in a child: the test binary itself, started again with
// childEnv set, which MaybeChild turns into that one operation.

// childEnv carries the operation to the child.
const childEnv = "DIFFTEST_MMAP_CHILD"

// childProcess is set by InProcess.
var childProcess bool

// InProcess says that the mount is served by this process: operations that
// could deadlock it run in a child process. Call MaybeChild from TestMain.
func InProcess() { childProcess = true }

// mmapArgs is what the child needs.
type mmapArgs struct {
	Path       string
	Off        int64
	Data       []byte
	CloseFirst bool
	Msync      bool
}

// MaybeChild runs the operation of a child started by mmapInChild and
// exits; in any other process it returns at once. Call it first in
// TestMain.
func MaybeChild() {
	v := os.Getenv(childEnv)
	if v == "" {
		return
	}
	var a mmapArgs
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err := mmapWrite(a.Path, op{kind: "mmap", path: a.Path, off: a.Off, data: a.Data, closeFirst: a.CloseFirst, msync: a.Msync})
	os.Exit(int(errnoOf(err)))
}

// mmapInChild runs mmapWrite in a child process and returns its errno.
func mmapInChild(p string, o op) error {
	arg, err := json.Marshal(mmapArgs{Path: p, Off: o.off, Data: o.data, CloseFirst: o.closeFirst, Msync: o.msync})
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(arg))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 && ee.ExitCode() != 2 {
		return syscall.Errno(ee.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("mmap child: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
