// Package mountutil holds what a FUSE mount helper needs besides the
// filesystem itself: -o option parsing in the fstab/mount(8) conventions,
// source URL normalisation, secrets (secrets file, netrc, prompt), mountpoint
// checks, unmounting, and handing a mount over to a background daemon.
package mountutil

// Exit codes of the cloudmount command, in one place.
const (
	// ExitOK: the command did what was asked (mounted, unmounted, ...).
	ExitOK = 0
	// ExitMountFailed: the mount (or another action) failed; the error was
	// printed and nothing stays mounted or running.
	ExitMountFailed = 1
	// ExitUsage: the command line was wrong (unknown flag or option, missing
	// argument, unsupported source).
	ExitUsage = 2
)
