package main

import (
	"io"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/sftp"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/fs"
	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/spf13/pflag"
)

// mountFlags are the flags of the mount command; each one can also be given
// as -o name or -o name=value.
type mountFlags struct {
	foreground         bool
	user               string
	secretsFile        string
	passwordCommand    string
	ca, caFile         string
	pins               []string
	clientCert         string
	clientKey          string
	insecureTLS        bool
	cacheDir           string
	uid, gid           int
	fileMode, dirMode  octalMode
	umask              octalMode
	allowOther         bool
	defaultPermissions bool
	readOnly           bool
	timeout            duration
	attrTimeout        duration
	dirCacheTime       duration
	cacheSize          byteSize
	transfers          int
	maxListing         int
	chunkSize          byteSize
	writebackDelay     duration
	commitInterval     duration
	fsync              string
	drainTimeout       duration
	logFile            string
	logLevel           string
	verbose            bool
	debug              bool
	nonempty           bool
	metaFile           bool
	identities         []string
	knownHosts         string
	acceptNewHostKey   bool
	sshConfig          string
	leftoverAge        duration
	nodeDir            string
	nodeURL            string
	capFile            string
	options            []string
	help               bool

	// userFromOption: the user came from -o user=NAME, which mount(8) may
	// also use for the local user of an fstab "user" mount; a user in the
	// URL wins over it.
	userFromOption bool

	source, mountpoint string
}

// optionAliases are -o options that set a flag of another name.
var optionAliases = map[string]mountutil.OptionAlias{
	"rw":         {Flag: "ro", Value: "false"},
	"nometafile": {Flag: "meta-file", Value: "false"},
}

// newMountFlagSet defines the mount flags on a fresh FlagSet writing errors
// nowhere (they are returned).
func newMountFlagSet(f *mountFlags) *pflag.FlagSet {
	flags := pflag.NewFlagSet("mount", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	f.timeout = duration(30 * time.Second)
	f.attrTimeout = duration(time.Second)
	f.dirCacheTime = duration(time.Minute)
	f.writebackDelay = duration(2 * time.Second)
	f.commitInterval = duration(cache.DefaultCommitInterval)
	f.drainTimeout = duration(time.Minute)
	f.chunkSize = byteSize(webdav.DefaultChunkSize)
	flags.BoolVarP(&f.foreground, "foreground", "f", false, "stay in the foreground, log to stderr, unmount on Ctrl-C")
	flags.StringVar(&f.user, "user", "", "remote user `NAME` (also from the URL: https://NAME@host/...)")
	flags.StringVar(&f.secretsFile, "secrets-file", mountutil.DefaultSecretsFile(), "`FILE` of \"URL user password\" lines, mode 0600")
	flags.StringVar(&f.passwordCommand, "password-command", "", "run `COMMAND` (no shell; quotes group words) and take the first line it prints as the password")
	flags.StringVar(&f.ca, "ca", "", "https: also trust the CA certificates in `FILE` (PEM; a private CA, intermediates, any order)")
	flags.StringVar(&f.caFile, "ca-file", "", "the same as --ca `FILE` (its older name)")
	flags.StringArrayVar(&f.pins, "pin-sha256", nil, "https: accept only a server key with this `PIN`, sha256//BASE64 as curl's --pinnedpubkey (repeatable)")
	flags.StringVar(&f.clientCert, "client-cert", "", "https: client certificate `FILE` (PEM) for servers that ask for one")
	flags.StringVar(&f.clientKey, "client-key", "", "https: the client certificate's private key `FILE` (PEM, mode 0600; default: in --client-cert)")
	flags.BoolVar(&f.insecureTLS, "insecure-tls", false, "https: do not check the server's certificate (logs a warning at every start; pins are still checked)")
	flags.StringVar(&f.cacheDir, "cache-dir", "", "cache `DIR` (default: one per source and user under ~/.cache/cloudmount)")
	flags.IntVar(&f.uid, "uid", -1, "`UID` that owns the files (default: yours)")
	flags.IntVar(&f.gid, "gid", -1, "`GID` of the files (default: yours)")
	f.fileMode = octalMode{bits: uint32(fs.DefaultFileMode), max: 0o7777}
	f.dirMode = octalMode{bits: uint32(fs.DefaultDirMode), max: 0o7777}
	f.umask = octalMode{max: 0o777, quiet: true}
	flags.Var(&f.fileMode, "file-mode", "permission bits (octal `MODE`) of files whose mode is stored nowhere; with --umask alone, 0666 minus the umask")
	flags.Var(&f.dirMode, "dir-mode", "permission bits (octal `MODE`) of directories whose mode is stored nowhere; with --umask alone, 0777 minus the umask")
	flags.Var(&f.umask, "umask", "permission bits (octal `MASK`) cleared from every mode shown, stored or not; what chmod stores is kept whole")
	flags.BoolVar(&f.allowOther, "allow-other", false, "let other users access the mount; turns on --default-permissions (non-root: needs user_allow_other in /etc/fuse.conf)")
	flags.BoolVar(&f.defaultPermissions, "default-permissions", false, "let the kernel check permissions against the files' mode and owner (on with --allow-other unless =false)")
	flags.BoolVar(&f.readOnly, "ro", false, "mount read-only (-o ro; -o rw is the default)")
	flags.Var(&f.timeout, "timeout", "deadline of each remote call, e.g. 30s or 2m (plain numbers are seconds)")
	flags.Var(&f.attrTimeout, "attr-timeout", "how long the kernel trusts attributes; an open checks the file's version after this (close-to-open)")
	flags.Var(&f.dirCacheTime, "dir-cache-time", "how long listings and \"no such file\" answers are trusted")
	flags.Var(&f.cacheSize, "cache-size", "limit of the block cache, e.g. 2G or 500M (default: 4G, at most half the free space)")
	flags.IntVar(&f.transfers, "transfers", 8, "`N` uploads in parallel")
	flags.IntVar(&f.maxListing, "max-listing-entries", webdav.DefaultMaxListingEntries, "refuse a directory listing of more than `N` entries from the server (bounds memory against a broken or hostile server)")
	flags.Var(&f.chunkSize, "chunk-size", "Nextcloud: files above this size (e.g. 10M, the default; 5M to 5G) go up in chunks of it, resumable after a restart")
	flags.Var(&f.writebackDelay, "writeback-delay", "how long a closed file waits before its upload (coalesces rsync's and editors' steps)")
	flags.Var(&f.commitInterval, "commit-interval", "a closed file is durable on local disk at most this long after close (one batch of syncs for all closes meanwhile)")
	flags.StringVar(&f.fsync, "fsync", "local", "what fsync waits for: `local` (durable in the journal on local disk) or server (uploaded)")
	flags.Var(&f.drainTimeout, "drain-timeout", "how long the daemon keeps uploading after the unmount; the rest waits in the journal for the next mount")
	flags.StringVar(&f.logFile, "log-file", "", "log to `FILE` (default: the journal or syslog when there is one, else daemon.log in the cache directory; with -f: stderr)")
	flags.StringVar(&f.logLevel, "log-level", "info", "log records of `LEVEL` and above: debug, info, warn or error")
	flags.BoolVarP(&f.verbose, "verbose", "v", false, "log more (--log-level debug)")
	flags.BoolVar(&f.debug, "debug", false, "log every FUSE request (and --log-level debug)")
	flags.BoolVar(&f.nonempty, "nonempty", false, "allow mounting over a non-empty directory")
	flags.BoolVar(&f.metaFile, "meta-file", true, "webdav: where the server keeps no metadata with the files, keep mtime, mode, owner and hash in a hidden file per directory ("+
		backends.MetaFileName+") so that other machines see them; =false (-o nometafile): in this machine's cache only")
	flags.StringArrayVar(&f.identities, "identity", nil, "sftp: private key `FILE` to try first (-o identity=FILE; repeatable)")
	flags.StringVar(&f.knownHosts, "known-hosts", "", "sftp: trusted host keys `FILE` (default ~/.ssh/known_hosts)")
	flags.BoolVar(&f.acceptNewHostKey, "accept-new-host-key", false, "sftp: add the key of a host not yet in known_hosts (never a changed key)")
	flags.StringVar(&f.nodeDir, "node-dir", "", "tahoe: the client node's `DIR` (default ~/.tahoe), for node.url and private/aliases")
	flags.StringVar(&f.nodeURL, "node-url", "", "tahoe: the node's web API `URL` (default: from NODEDIR/node.url)")
	flags.StringVar(&f.capFile, "capfile", "", "tahoe: read the directory capability from `FILE` (mode 0600; - for standard input) instead of an alias")
	flags.StringVar(&f.sshConfig, "ssh-config", "", "sftp: OpenSSH client config `FILE` (default ~/.ssh/config; none: no config)")
	f.leftoverAge = duration(sftp.DefaultLeftoverAge)
	flags.Var(&f.leftoverAge, "leftover-age", "sftp: a listing removes temporary upload files that a killed mount left once they are this old (running uploads are never touched)")
	flags.StringArrayVarP(&f.options, "options", "o", nil, "mount options: any flag above as `OPT[,OPT...]` (name or name=value), plus fstab's")
	flags.BoolVarP(&f.help, "help", "h", false, "show this help")
	return flags
}

// parseMountArgs parses the mount command line: flags, -o lists and
// exactly two positional arguments. Errors are usage errors.
func parseMountArgs(args []string) (*mountFlags, error) {
	f := &mountFlags{}
	flags := newMountFlagSet(f)
	if err := flags.Parse(args); err != nil {
		return nil, usageError{err}
	}
	if f.help {
		return f, nil
	}
	cliUser := f.user
	if err := mountutil.ApplyOptions(flags, f.options, optionAliases, "options", "help"); err != nil {
		return nil, usageError{err}
	}
	f.userFromOption = f.user != cliUser
	// With other users on the mount, the kernel must check modes and
	// owners: otherwise anyone may change files with the owner's
	// credentials. Only an explicit --default-permissions=false (or -o
	// default_permissions=false) turns that off.
	if f.allowOther && !flags.Changed("default-permissions") {
		f.defaultPermissions = true
	}
	switch n := flags.NArg(); {
	case n < 2:
		return nil, usageErrorf("missing %s", []string{"SOURCE and MOUNTPOINT", "MOUNTPOINT"}[n])
	case n > 2:
		return nil, usageErrorf("too many arguments: want SOURCE MOUNTPOINT, got %d arguments", n)
	}
	f.source, f.mountpoint = flags.Arg(0), flags.Arg(1)
	if f.uid < -1 || f.gid < -1 || int64(f.uid) > 1<<32-2 || int64(f.gid) > 1<<32-2 {
		return nil, usageErrorf("--uid and --gid must be user and group numbers")
	}
	// As davfs2 and rclone do, a umask alone makes the default modes
	// 0666 and 0777 minus the umask.
	if flags.Changed("umask") {
		if !flags.Changed("file-mode") {
			f.fileMode.bits = 0o666
		}
		if !flags.Changed("dir-mode") {
			f.dirMode.bits = 0o777
		}
	}
	if f.fileMode.bits == 0 || f.dirMode.bits == 0 {
		return nil, usageErrorf("--file-mode and --dir-mode must not be 0000")
	}
	if f.timeout <= 0 || f.attrTimeout < 0 {
		return nil, usageErrorf("--timeout must be positive and --attr-timeout not negative")
	}
	if f.transfers < 1 || f.transfers > 64 {
		return nil, usageErrorf("--transfers must be between 1 and 64")
	}
	if f.commitInterval <= 0 || time.Duration(f.commitInterval) > time.Minute {
		return nil, usageErrorf("--commit-interval must be positive and at most 1m")
	}
	if f.fsync != "local" && f.fsync != "server" {
		return nil, usageErrorf("--fsync must be local or server, not %q", f.fsync)
	}
	if _, err := parseLogLevel(f.logLevel); err != nil {
		return nil, usageError{err}
	}
	if f.chunkSize < webdav.MinChunkSize || f.chunkSize > webdav.MaxChunkSize {
		return nil, usageErrorf("--chunk-size must be between 5M and 5G (Nextcloud's bounds for a chunk)")
	}
	if f.maxListing < 1 {
		return nil, usageErrorf("--max-listing-entries must be positive")
	}
	return f, nil
}

// mountUsage writes the mount command's help.
func mountUsage(w io.Writer) {
	var f mountFlags
	_ = writeHelp(w, mountUsageHead, newMountFlagSet(&f), mountUsageTail)
}
