package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/spf13/pflag"
)

// mainUsage is the text of "cloudmount help".
const mainUsage = `cloudmount mounts remote storage (WebDAV, SFTP, Tahoe-LAFS) as a local directory through FUSE.

Usage:
  cloudmount SOURCE MOUNTPOINT [-o OPT,OPT...] [flags]   mount (the form mount(8) uses)
  cloudmount mount SOURCE MOUNTPOINT [flags]             the same
  cloudmount unmount MOUNTPOINT                          unmount and wait until it is gone
  cloudmount status [MOUNTPOINT] [--json]                queue, uploads, failures, conflicts
  cloudmount sync [MOUNTPOINT] [--timeout D]             wait until the queue is on the server
  cloudmount verify [PATH] [--json]                      compare known hashes with the server
  cloudmount serve webdav DIR [--addr HOST:PORT]         serve DIR over WebDAV (demo)
  cloudmount version                                     print the version
  cloudmount help [mount|unmount|status|sync|verify|serve] show help

SOURCE is a WebDAV URL: https://host/path/, http://..., davs://host/path
(https) or dav://host/path (http); an SFTP server: sftp://user@host:port/path
or user@host:path; or a Tahoe-LAFS directory: tahoe:ALIAS. The user name may
be in the URL (https://alice@host/dav/) or given with --user; the password
never is.

The command returns once the mount is ready; the filesystem is served by a
background daemon until "cloudmount unmount MOUNTPOINT" or
"fusermount3 -u MOUNTPOINT". With -f it stays in the foreground. The
daemon logs to the journal or syslog when the machine has one, else to
daemon.log in its cache directory; -f logs to stderr (see --log-file and
--log-level).

Passwords are looked up in this order: $CLOUDMOUNT_PASSWORD, your secrets
file (~/.config/cloudmount/secrets, mode 0600, lines "URL user password" or
"MOUNTPOINT user password"), the system secrets file
(/etc/cloudmount/secrets, owned by root, closed to others), the password
command (-o password_command=COMMAND, run without a shell), ~/.netrc, then
a prompt on the terminal.

fstab (put the remote user in the URL: mount(8) may pass user=LOCALUSER):
  https://alice@host/dav/  /home/alice/cloud  fuse.cloudmount  noauto,user,_netdev  0 0

Exit codes: 0 success, 1 failure (the mount failed; sync and verify: see
their help), 2 wrong usage.
Run 'cloudmount help mount' for the mount flags and -o options.
`

// mountUsageHead and mountUsageTail frame the flag list of "help mount".
const (
	mountUsageHead = `Usage: cloudmount [mount] SOURCE MOUNTPOINT [-o OPT,OPT...] [flags]

Mounts SOURCE (a WebDAV or SFTP URL, or tahoe:ALIAS) on MOUNTPOINT, an existing empty directory, and
returns once the mount is ready.

Flags:
`
	mountUsageTail = `
Every flag can also be given as a mount option, -o name or -o name=value,
with '_' or '-' alike: -o allow_other,uid=1000,timeout=60s,ro.
-o rw is the default. -o user=NAME sets the remote user (a user in the URL
wins over it); -o user alone (fstab: let users mount) is ignored, as are the
other options that fstab and mount(8) pass: defaults, users, nouser, auto,
noauto, _netdev, nofail, suid, nosuid, dev, nodev, exec, noexec, atime,
noatime, relatime, strictatime, sync, async, x-* and comment=*. Any other
option is an error.

Other local users: without --allow-other only you (the user who mounts)
can enter the mount. --allow-other lets everyone in and turns on
--default-permissions, so that the kernel enforces each file's mode and
owner; otherwise any local user could change and delete files with your
credentials on the server. --default-permissions=false (-o
default_permissions=false) turns the checks off again; the daemon then logs
a warning at every start.

TLS: https servers are checked against the system's CA certificates. --ca
FILE adds a private CA (a chain file with root and intermediates in any
order works); --pin-sha256 sha256//BASE64 also requires the server's key
to be that one; --client-cert and --client-key send a client certificate.
A failed check says which it was (unknown authority, expired, wrong host
name, key not pinned) and which option fixes it. --insecure-tls skips the
certificate checks and logs a warning at every start.
`
	unmountUsageHead = `Usage: cloudmount unmount MOUNTPOINT

Unmounts a cloudmount mount (fusermount3 -u, or umount(2) as root) and waits
until the kernel no longer lists it.

Flags:
`
	statusUsageHead = `Usage: cloudmount status [MOUNTPOINT] [--json]

Shows what the daemon of a mount is doing: online or offline (since when,
and why), the files and bytes queued for upload, the uploads in progress
with their rates, failed uploads with their last error, conflict copies and
what a crash left that could not be uploaded (quarantined, with why). MOUNTPOINT (or any path in the mount) defaults
to the mount that holds the current directory; outside any mount, every
cloudmount mount of the user is shown (--json then prints an array).
The daemon answers on a unix socket only its user can open.

Exit codes: 0 the daemon answered, 1 it did not (or is no cloudmount mount).

Flags:
`
	syncUsageHead = `Usage: cloudmount sync [MOUNTPOINT] [--timeout DURATION] [-q]

Waits until everything written to the mount before the command started is
on the server, showing progress (a bar on a terminal, else a line every
10s on stderr). Run it after rsync in a backup script. MOUNTPOINT (or any
path in the mount) defaults to the mount that holds the current directory.
While the server cannot be reached it keeps waiting, unless --timeout says
otherwise. Ctrl-C stops the wait, not the uploads.

Exit codes: 0 everything is on the server; 1 an upload failed permanently
(the failed files and errors are printed; the data stays in the journal),
the timeout passed, or the daemon could not be asked.

Flags:
`
	verifyUsageHead = `Usage: cloudmount verify [PATH] [--json] [-q]

Reads every file at or below PATH (default: the current directory, which
must be in a cloudmount mount) from the server, bypassing the local cache,
and compares its SHA-256 with the hash the mount believes in (the one
stored on the server, or in the local index where the server cannot store
one). Files with no known hash are hashed and counted; files with local
changes not yet uploaded are skipped. Shows a progress bar on a terminal.

Exit codes: 0 every file read matches; 1 some differ or could not be read
(each is listed), or the daemon could not be asked.

Flags:
`
	serveUsageHead = `Usage: cloudmount serve webdav DIR [--addr HOST:PORT] [--user NAME]

Serves DIR over WebDAV in the foreground until Ctrl-C, for trying cloudmount
without a server. With --user, clients must log in as NAME with the password
in $CLOUDMOUNT_PASSWORD.

Flags:
`
)

// helpCommand is "cloudmount help [TOPIC]".
func helpCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		_, err := io.WriteString(stdout, mainUsage)
		return err
	}
	if len(args) > 1 {
		return usageErrorf("help takes one topic")
	}
	switch args[0] {
	case "--man":
		return writeManPage(stdout)
	case "mount":
		mountUsage(stdout)
		return nil
	case "unmount", "umount":
		return unmountCommand([]string{"--help"}, stdout)
	case "serve":
		return serveCommand([]string{"--help"}, stdout, io.Discard)
	case "status":
		return statusCommand([]string{"--help"}, stdout)
	case "sync":
		return syncCommand([]string{"--help"}, stdout, io.Discard)
	case "verify":
		return verifyCommand([]string{"--help"}, stdout, io.Discard)
	}
	return usageErrorf("no help on %q: try mount, unmount, status, sync, verify or serve", args[0])
}

// writeHelp writes a command's help: head (which ends with "Flags:"), the
// flag list and tail. A helpCollector (the man page) takes the parts
// instead of the text.
func writeHelp(w io.Writer, head string, flags *pflag.FlagSet, tail string) error {
	if c, ok := w.(*helpCollector); ok {
		c.helps = append(c.helps, commandHelp{head: head, flags: flags, tail: tail})
		return nil
	}
	_, err := io.WriteString(w, head+flagUsages(flags)+tail)
	return err
}

// flagRow is one flag as the help texts show it.
type flagRow struct {
	short, long string // "f" and "foreground"; short may be ""
	arg         string // the value's name ("FILE"), "" for a bool flag
	usage       string // with the default where it says something
}

// flagRows lists the visible flags of a FlagSet in their order: bool flags
// without pflag's "[=true|false]", defaults only where they say something.
func flagRows(flags *pflag.FlagSet) []flagRow {
	var rows []flagRow
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		r := flagRow{short: f.Shorthand, long: f.Name}
		varname, usage := pflag.UnquoteUsage(f)
		if varname != "" && varname != "bool" {
			r.arg = strings.ToUpper(varname)
		}
		if f.Value.Type() != "bool" && f.DefValue != "" && f.DefValue != "-1" && f.DefValue != "[]" {
			usage += " (default " + mountutil.Tildify(f.DefValue) + ")"
		}
		r.usage = usage
		rows = append(rows, r)
	})
	return rows
}

// flagUsages lists the flags of a FlagSet, one per line, as the help texts
// show them.
func flagUsages(flags *pflag.FlagSet) string {
	rows := flagRows(flags)
	lefts := make([]string, len(rows))
	width := 0
	for i, r := range rows {
		left := "      --" + r.long
		if r.short != "" {
			left = "  -" + r.short + ", --" + r.long
		}
		if r.arg != "" {
			left += " " + r.arg
		}
		lefts[i] = left
		width = max(width, len(left))
	}
	var b strings.Builder
	for i, r := range rows {
		fmt.Fprintf(&b, "%-*s   %s\n", width, lefts[i], r.usage)
	}
	return b.String()
}
