package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/cloudmount/cloudmount/fs"
	"github.com/spf13/pflag"
)

// verifyOutput is the output of "cloudmount verify --json": the mount, OK
// (every file read matched its known hash and nothing failed) and the
// fields of fs.VerifyReport, with paths relative to the mount root.
type verifyOutput struct {
	Mountpoint string `json:"mountpoint"`
	OK         bool   `json:"ok"`
	*fs.VerifyReport
}

// verifyListMax is how many paths of a harmless list (no hash known,
// pending) the human output shows.
const verifyListMax = 10

// verifyCommand is "cloudmount verify [PATH]": the daemon reads every file
// at or below PATH from the server and compares its hash with the one the
// mount believes in. Exit status 1 if any differs or cannot be read.
func verifyCommand(args []string, stdout, stderr io.Writer) error {
	flags := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	asJSON := flags.Bool("json", false, "print the report as JSON for scripts")
	quiet := flags.BoolP("quiet", "q", false, "print no progress")
	help := flags.BoolP("help", "h", false, "show this help")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if *help {
		return writeHelp(stdout, verifyUsageHead, flags, "")
	}
	if flags.NArg() > 1 {
		return usageErrorf("verify takes at most one PATH")
	}
	ref, rel, err := findMount(flags.Arg(0))
	if err != nil {
		return err
	}
	target := filepath.Join(ref.Mountpoint, filepath.FromSlash(rel))
	ctx, cancel := interruptible(context.Background())
	defer cancel()
	view := newProgressView(stderr, "verify", *quiet)
	r, err := controlCall(ctx, ref, controlRequest{Op: opVerify, Path: rel}, func(r controlReply) {
		if p := r.Verify; p != nil {
			desc := fmt.Sprintf("%d/%d files", p.FilesDone, p.FilesTotal)
			line := fmt.Sprintf("%d of %d files, %s of %s", p.FilesDone, p.FilesTotal,
				formatSize(p.BytesDone), formatSize(p.BytesTotal))
			if p.Path != "" {
				desc += " " + shorten(p.Path, 30)
				line += "; reading " + p.Path
			}
			view.update(p.BytesDone, p.BytesTotal, desc, line)
		}
	})
	view.finish()
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("verify %s: %w", target, err)
	case err != nil:
		return err // it names the mount
	}
	if r.Error != "" {
		return fmt.Errorf("verify %s: %s", target, r.Error)
	}
	if r.Report == nil {
		return fmt.Errorf("verify %s: the daemon sent no report", target)
	}
	rep := *r.Report
	if *asJSON {
		b, err := json.MarshalIndent(verifyOutput{Mountpoint: ref.Mountpoint, OK: rep.OK(), VerifyReport: &rep}, "", "  ")
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	} else {
		writeVerifyReport(stdout, ref.Mountpoint, target, rep)
	}
	if !rep.OK() {
		var parts []string
		if n := len(rep.Mismatches); n > 0 {
			verb := " differ"
			if n == 1 {
				verb = " differs"
			}
			parts = append(parts, plural(n, "file")+verb+" from the known hash")
		}
		if n := len(rep.Errors); n > 0 {
			parts = append(parts, fmt.Sprintf("%d could not be verified", n))
		}
		return fmt.Errorf("verify %s: %s", target, strings.Join(parts, ", "))
	}
	return nil
}

// writeVerifyReport writes a verify report for people, paths shown where
// they are in the mount.
func writeVerifyReport(w io.Writer, mountpoint, target string, rep fs.VerifyReport) {
	local := func(p string) string { return filepath.Join(mountpoint, filepath.FromSlash(p)) }
	fmt.Fprintf(w, "verify %s: %s (%s) read from the server\n", target, plural(rep.Checked, "file"), formatSize(rep.Bytes))
	switch {
	case rep.Matched > 0 && len(rep.Mismatches) == 0:
		fmt.Fprintf(w, "  %s with a known hash: all match\n", plural(rep.Matched, "file"))
	case rep.Matched > 0:
		fmt.Fprintf(w, "  %s match their known hash\n", plural(rep.Matched, "file"))
	}
	list := func(head string, paths []string) {
		if len(paths) == 0 {
			return
		}
		fmt.Fprintf(w, "  %s:\n", head)
		for i, p := range paths {
			if i == verifyListMax {
				fmt.Fprintf(w, "    ... and %d more (--json lists them all)\n", len(paths)-i)
				break
			}
			fmt.Fprintf(w, "    %s\n", local(p))
		}
	}
	list(fmt.Sprintf("%s had no known hash (hashed, nothing to compare with)", plural(len(rep.NoHash), "file")), rep.NoHash)
	list(fmt.Sprintf("%s skipped: local changes wait for their upload", plural(len(rep.Pending), "file")), rep.Pending)
	if rep.Skipped > 0 {
		fmt.Fprintf(w, "  %d symlinks and special files skipped (no content to hash)\n", rep.Skipped)
	}
	for _, m := range rep.Mismatches {
		fmt.Fprintf(w, "MISMATCH %s (%s): the mount believes sha256 %s, the server's content has %s\n",
			local(m.Path), formatSize(m.Size), m.Want, m.Got)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "ERROR %s: %s\n", local(e.Path), e.Err)
	}
}
