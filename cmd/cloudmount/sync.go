package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	"github.com/spf13/pflag"
)

// errInterruptedByUser is the cause of a command stopped by Ctrl-C.
var errInterruptedByUser = errors.New("interrupted")

// syncCommand is "cloudmount sync [MOUNTPOINT]": it waits until everything
// queued before it is on the server. Exit status 1 if an upload failed
// permanently, the timeout passed, or the daemon could not be asked.
func syncCommand(args []string, stdout, stderr io.Writer) error {
	flags := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	timeout := duration(0)
	flags.Var(&timeout, "timeout", "give up after this long; 0s waits until done")
	quiet := flags.BoolP("quiet", "q", false, "print no progress and no summary, only errors")
	help := flags.BoolP("help", "h", false, "show this help")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if *help {
		return writeHelp(stdout, syncUsageHead, flags, "")
	}
	if flags.NArg() > 1 {
		return usageErrorf("sync takes at most one MOUNTPOINT")
	}
	ref, _, err := findMount(flags.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := interruptible(context.Background())
	defer cancel()
	if timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, time.Duration(timeout),
			fmt.Errorf("not done after %v", time.Duration(timeout)))
		defer stop()
	}
	view := newProgressView(stderr, "sync", *quiet)
	var (
		first, last *cache.Status
	)
	r, err := controlCall(ctx, ref, controlRequest{Op: opSync}, func(r controlReply) {
		if r.Status == nil {
			return
		}
		if first == nil {
			first = r.Status
		}
		last = r.Status
		done, total, desc, line := syncProgress(*first, *r.Status)
		view.update(done, total, desc, line)
	})
	view.finish()
	switch {
	case err != nil && ctx.Err() != nil && last != nil:
		return fmt.Errorf("sync %s: %w; %s (%s) still queued", ref.Mountpoint, err,
			plural(last.QueuedFiles, "file"), formatSize(last.QueuedBytes))
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("sync %s: %w", ref.Mountpoint, err)
	case err != nil:
		return err // it names the mount
	}
	if r.Error != "" {
		return fmt.Errorf("sync %s: %s", ref.Mountpoint, r.Error)
	}
	if !*quiet {
		msg := "everything queued is on the server"
		if first != nil && r.Status != nil {
			if n := r.Status.UploadedFiles - first.UploadedFiles; n > 0 {
				msg += fmt.Sprintf(" (%s, %s uploaded)", plural(n, "file"), formatSize(r.Status.UploadedBytes-first.UploadedBytes))
			}
		}
		fmt.Fprintf(stdout, "%s: %s\n", ref.Mountpoint, msg)
	}
	return nil
}

// syncProgress turns the first and the latest status of a sync into
// progress: bytes uploaded since the sync began, of those plus the ones
// still queued; a short description for a bar and a line for a log.
func syncProgress(first, cur cache.Status) (done, total int64, desc, line string) {
	done = max(cur.UploadedBytes-first.UploadedBytes, 0)
	total = done + cur.QueuedBytes
	desc = fmt.Sprintf("%s left", plural(cur.QueuedFiles, "file"))
	line = fmt.Sprintf("%s (%s) to upload", plural(cur.QueuedFiles, "file"), formatSize(cur.QueuedBytes))
	if cur.AuthFailed {
		desc += ", authentication failed"
		line += "; the server refuses the credentials (retried until it accepts them; check the password)"
		if cur.LastError != "" {
			line += ": " + cur.LastError
		}
		return done, total, desc, line
	}
	if !cur.Online {
		desc += ", offline"
		line += "; the server cannot be reached"
		if cur.LastError != "" {
			line += ": " + cur.LastError
		}
		return done, total, desc, line
	}
	var rate float64
	for _, t := range cur.Uploading {
		rate += t.Rate
	}
	if len(cur.Uploading) > 0 {
		line += fmt.Sprintf("; uploading %s at %s", cur.Uploading[0].Path, formatRate(rate))
		if n := len(cur.Uploading) - 1; n > 0 {
			line += fmt.Sprintf(" (and %d more)", n)
		}
	}
	for _, f := range cur.Failed {
		if f.Permanent {
			desc += ", failures"
			line += fmt.Sprintf("; %s failed: %s", f.Path, f.LastError)
			break
		}
	}
	return done, total, desc, line
}

// interruptible returns a context that Ctrl-C (or SIGTERM) cancels with
// errInterruptedByUser.
func interruptible(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel(errInterruptedByUser)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(context.Canceled)
	}
}
