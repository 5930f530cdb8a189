package integration

// Commands on a mount run under a watch, so that a hang is seen and
// ended (the SFTP and Tahoe fault tests).

import (
	"bytes"
	"os/exec"
	"testing"
	"time"
)

// cmdResult is what one watched command (withinLimit, boundedRun) came
// back with.
type cmdResult struct {
	out  string
	err  error
	took time.Duration
}

// watchedCmd is a started command whose end is awaited with time limits.
type watchedCmd struct {
	cmd   *exec.Cmd
	out   bytes.Buffer // stdout and stderr
	start time.Time
	done  chan error // the result of cmd.Wait, once
	res   *cmdResult // once done has answered
}

// startWatched starts a command with its output collected; if it cannot
// start, the test fails.
func startWatched(t *testing.T, name string, args ...string) *watchedCmd {
	t.Helper()
	w := &watchedCmd{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	w.start = time.Now()
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	return w
}

// wait waits up to d for the command to end; ok is false if it has not.
func (w *watchedCmd) wait(d time.Duration) (res cmdResult, ok bool) {
	if w.res != nil {
		return *w.res, true
	}
	select {
	case err := <-w.done:
		w.res = &cmdResult{out: w.out.String(), err: err, took: time.Since(w.start)}
		return *w.res, true
	case <-time.After(d):
		return cmdResult{}, false
	}
}
