package main

import (
	"io"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/spf13/pflag"
)

// unmountCommand is "cloudmount unmount MOUNTPOINT": fusermount3 -u (or
// umount(2) as root), then a wait until the kernel no longer lists the
// mount.
func unmountCommand(args []string, stdout io.Writer) error {
	flags := pflag.NewFlagSet("unmount", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	timeout := duration(30 * time.Second)
	flags.Var(&timeout, "timeout", "how long to wait for the mount to go")
	help := flags.BoolP("help", "h", false, "show this help")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if *help {
		return writeHelp(stdout, unmountUsageHead, flags, "")
	}
	if flags.NArg() != 1 {
		return usageErrorf("unmount wants one MOUNTPOINT")
	}
	return mountutil.Unmount(flags.Arg(0), time.Duration(timeout))
}
