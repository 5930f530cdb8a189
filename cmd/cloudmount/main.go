// Command cloudmount mounts remote storage (WebDAV today) as a local
// directory through FUSE, and serves a directory over WebDAV for trying it.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cloudmount/cloudmount/mountutil"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args (without the program name) and
// returns the exit code, printing errors to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	return exitCode(dispatch(args, stdout, stderr), stderr)
}

// dispatch picks the subcommand; a command line without one is a mount, as
// mount(8) and mount.fuse3 call it: cloudmount SOURCE MOUNTPOINT -o OPTS.
func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return usageErrorf("missing SOURCE and MOUNTPOINT")
	}
	switch args[0] {
	case "mount":
		return mountCommand(args[1:], stdout, stderr)
	case "unmount", "umount":
		return unmountCommand(args[1:], stdout)
	case "serve":
		return serveCommand(args[1:], stdout, stderr)
	case "status":
		return statusCommand(args[1:], stdout)
	case "sync":
		return syncCommand(args[1:], stdout, stderr)
	case "verify":
		return verifyCommand(args[1:], stdout, stderr)
	case "version", "--version":
		return versionCommand(args[1:], stdout)
	case "help", "-h", "--help":
		return helpCommand(args[1:], stdout)
	case mountutil.DaemonVerb:
		return daemonCommand()
	}
	return mountCommand(args, stdout, stderr)
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ err error }

// Error is the message, printed with a pointer to the help.
func (e usageError) Error() string { return e.err.Error() }

// Unwrap gives errors.Is and errors.As the cause.
func (e usageError) Unwrap() error { return e.err }

// usageErrorf makes a usageError.
func usageErrorf(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// silentError carries an exit code whose message was already written
// elsewhere (the daemon's log).
type silentError struct{ code int }

// Error is only for logs; exitCode prints nothing for a silentError.
func (e silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode prints err (if any) and maps it to the exit code.
func exitCode(err error, stderr io.Writer) int {
	var (
		usage  usageError
		silent silentError
	)
	switch {
	case err == nil:
		return mountutil.ExitOK
	case errors.As(err, &silent):
		return silent.code
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "cloudmount: %v\nRun 'cloudmount help' for usage.\n", err)
		return mountutil.ExitUsage
	default:
		fmt.Fprintf(stderr, "cloudmount: %v\n", err)
		return mountutil.ExitMountFailed
	}
}
