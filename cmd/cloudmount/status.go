package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/spf13/pflag"
)

// statusOutput is one mount in the output of "cloudmount status --json":
// the mount and the fields of cache.Status, or Error if its daemon did not
// answer.
type statusOutput struct {
	Mountpoint string `json:"mountpoint"`
	Source     string `json:"source,omitempty"`
	Error      string `json:"error,omitempty"`
	*cache.Status
}

// statusCommand is "cloudmount status [MOUNTPOINT] [--json]".
func statusCommand(args []string, stdout io.Writer) error {
	flags := pflag.NewFlagSet("status", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	asJSON := flags.Bool("json", false, "print JSON for scripts")
	timeout := duration(10 * time.Second)
	flags.Var(&timeout, "timeout", "how long to wait for the daemon's answer")
	help := flags.BoolP("help", "h", false, "show this help")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if *help {
		return writeHelp(stdout, statusUsageHead, flags, "")
	}
	if flags.NArg() > 1 {
		return usageErrorf("status takes at most one MOUNTPOINT")
	}
	var refs []mountRef
	single := true
	if flags.NArg() == 1 {
		ref, _, err := findMount(flags.Arg(0))
		if err != nil {
			return err
		}
		refs = []mountRef{ref}
	} else if ref, _, err := findMount(""); err == nil {
		refs = []mountRef{ref}
	} else {
		single = false
		if refs, err = userMounts(); err != nil {
			return err
		}
	}
	outs := make([]statusOutput, len(refs))
	failed := 0
	for i, ref := range refs {
		outs[i] = queryStatus(ref, time.Duration(timeout))
		if outs[i].Error != "" {
			failed++
		}
	}
	if single && outs[0].Error != "" {
		return errors.New(outs[0].Error)
	}
	if *asJSON {
		var v any = outs
		if single {
			v = outs[0]
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	} else {
		if len(outs) == 0 {
			fmt.Fprintln(stdout, "no cloudmount mounts")
		}
		now := time.Now()
		for i, o := range outs {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			writeStatus(stdout, o, now)
		}
	}
	if failed > 0 {
		return silentError{mountutil.ExitMountFailed}
	}
	return nil
}

// queryStatus asks the daemon of ref for its status.
func queryStatus(ref mountRef, timeout time.Duration) statusOutput {
	out := statusOutput{Mountpoint: ref.Mountpoint, Source: ref.Source}
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout,
		fmt.Errorf("no answer within %v (is the daemon stuck? see its log)", timeout))
	defer cancel()
	r, err := controlCall(ctx, ref, controlRequest{Op: opStatus}, nil)
	switch {
	case err != nil:
		out.Error = err.Error()
	case r.Error != "":
		out.Error = fmt.Sprintf("daemon of %s: %s", ref.Mountpoint, r.Error)
	case r.Status == nil:
		out.Error = fmt.Sprintf("daemon of %s: answer without a status", ref.Mountpoint)
	default:
		out.Status = r.Status
	}
	return out
}

// writeStatus writes one mount's status for people.
func writeStatus(w io.Writer, o statusOutput, now time.Time) {
	head := o.Mountpoint
	if o.Source != "" {
		head += "  (" + o.Source + ")"
	}
	fmt.Fprintln(w, head)
	if o.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", indent(o.Error, "    "))
		return
	}
	s := o.Status
	switch {
	case s.Online:
		fmt.Fprintln(w, "  online")
	case s.AuthFailed:
		fmt.Fprintf(w, "  authentication failed%s: %s\n    %s\n", since(s.OfflineSince, now), s.LastError, authAdvice)
	default:
		line := "  offline" + since(s.OfflineSince, now)
		if s.LastError != "" {
			line += ": " + s.LastError
		}
		fmt.Fprintln(w, line)
	}
	switch {
	case s.QueuedFiles == 0 && s.QueuedChanges == 0:
		fmt.Fprintln(w, "  queued: nothing, everything is on the server")
	case s.QueuedChanges == 0:
		fmt.Fprintf(w, "  queued: %s, %s\n", plural(s.QueuedFiles, "file"), formatSize(s.QueuedBytes))
	default:
		fmt.Fprintf(w, "  queued: %s, %s; %s of the tree (mkdir, rm, rmdir, mv)\n",
			plural(s.QueuedFiles, "file"), formatSize(s.QueuedBytes), plural(s.QueuedChanges, "change"))
	}
	for _, t := range s.Uploading {
		line := fmt.Sprintf("  uploading: %s  %s of %s", t.Path, formatSize(t.Done), formatSize(t.Size))
		if t.Size > 0 {
			line += fmt.Sprintf(" (%d%%)", t.Done*100/t.Size)
		}
		fmt.Fprintf(w, "%s at %s\n", line, formatRate(t.Rate))
	}
	for _, f := range s.Failed {
		if f.Permanent {
			fmt.Fprintf(w, "  failed permanently: %s: %s (%s; kept in the journal, retried at the next mount)\n",
				f.Path, f.LastError, plural(f.Attempts, "attempt"))
			continue
		}
		next := ""
		if !f.NextTry.IsZero() {
			if d := f.NextTry.Sub(now); d > 0 {
				next = ", next try in " + formatDuration(d)
			} else {
				next = ", retrying now"
			}
		}
		fmt.Fprintf(w, "  failed: %s: %s (%s%s)\n", f.Path, f.LastError, plural(f.Attempts, "attempt"), next)
	}
	for _, c := range s.Conflicts {
		if c.Note != "" {
			fmt.Fprintf(w, "  conflict: %s: %s (%s)\n", c.Path, c.Note, c.Time.Local().Format("2006-01-02 15:04:05"))
			continue
		}
		fmt.Fprintf(w, "  conflict: %s changed on the server; the local version is in %s (%s)\n",
			c.Path, c.Copy, c.Time.Local().Format("2006-01-02 15:04:05"))
	}
	for _, q := range s.Quarantined {
		fmt.Fprintf(w, "  quarantined, not uploaded: %s\n", q)
		if why, err := os.ReadFile(q + ".why"); err == nil {
			fmt.Fprintf(w, "    %s\n", strings.TrimSpace(string(why)))
		}
	}
	if len(s.Quarantined) > 0 {
		fmt.Fprintf(w, "  (look at what is quarantined, copy what you want into the mount, then delete it)\n")
	}
	fmt.Fprintf(w, "  uploaded since the mount: %s, %s\n", plural(s.UploadedFiles, "file"), formatSize(s.UploadedBytes))
	if s.Server != "" {
		fmt.Fprintf(w, "  server: %s\n", s.Server)
	}
	if c := s.Cache; c.Limit > 0 || c.Used > 0 {
		line := fmt.Sprintf("  block cache: %s", formatSize(c.Used))
		if c.Limit > 0 {
			line += " of " + formatSize(c.Limit)
		}
		if reads := c.Hits + c.Misses; reads > 0 {
			line += fmt.Sprintf(", %d%% of reads from disk", c.Hits*100/reads)
		}
		fmt.Fprintln(w, line)
	}
}

// authAdvice tells a user whose server refuses the credentials what to do.
const authAdvice = "The server refuses the user name and password: check them (the secrets file, netrc or " +
	"password command). Uploads stay queued and are retried until the server accepts them; " +
	"after a password change, remount (the queue is kept in the journal)."

// since formats " since TIME (AGO ago)", or "" for the zero time.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf(" since %s (%s ago)", t.Local().Format("2006-01-02 15:04:05"), formatAgo(t, now))
}
