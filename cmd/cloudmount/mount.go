package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends/tahoe"
	"github.com/cloudmount/cloudmount/backends/tlsclient"
	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/mountutil"
)

// mountConfig is a mount with everything resolved: what the foreground
// command hands to its daemon (as JSON, over a pipe). It holds the password:
// log it only through LogValue.
type mountConfig struct {
	Source             string        `json:"source"` // canonical URL, no user
	FSName             string        `json:"fsname"` // source with user, for mount tables
	User               string        `json:"user,omitempty"`
	Password           string        `json:"password,omitempty"`
	PasswordFrom       string        `json:"password_from,omitempty"`
	Mountpoint         string        `json:"mountpoint"`     // absolute, or /dev/fd/N
	MountpointArg      string        `json:"mountpoint_arg"` // as the user wrote it
	CacheDir           string        `json:"cache_dir"`
	LogFile            string        `json:"log_file,omitempty"`
	Syslog             string        `json:"syslog,omitempty"` // the system log's socket, when logging there
	LogLevel           string        `json:"log_level,omitempty"`
	UID                uint32        `json:"uid"`
	GID                uint32        `json:"gid"`
	FileMode           uint32        `json:"file_mode"`
	DirMode            uint32        `json:"dir_mode"`
	Umask              uint32        `json:"umask,omitempty"`
	AllowOther         bool          `json:"allow_other,omitempty"`
	DefaultPermissions bool          `json:"default_permissions,omitempty"`
	ReadOnly           bool          `json:"read_only,omitempty"`
	NonEmpty           bool          `json:"nonempty,omitempty"`
	Timeout            time.Duration `json:"timeout"`
	AttrTimeout        time.Duration `json:"attr_timeout"`
	DirCacheTime       time.Duration `json:"dir_cache_time"`
	CacheSize          int64         `json:"cache_size,omitempty"`
	Transfers          int           `json:"transfers"`
	MaxListingEntries  int           `json:"max_listing_entries"`
	ChunkSize          int64         `json:"chunk_size,omitempty"`
	WritebackDelay     time.Duration `json:"writeback_delay"`
	CommitInterval     time.Duration `json:"commit_interval"`
	FsyncServer        bool          `json:"fsync_server,omitempty"`
	NoMetaFile         bool          `json:"no_meta_file,omitempty"`
	DrainTimeout       time.Duration `json:"drain_timeout"`
	Verbose            bool          `json:"verbose,omitempty"`
	Debug              bool          `json:"debug,omitempty"`
	Foreground         bool          `json:"-"`
	// TLS is what an https source needs besides the password.
	TLS tlsclient.Settings `json:"tls,omitzero"`
	// SSH is what an SFTP source needs besides the password.
	SSH sshSettings `json:"ssh,omitzero"`
	// NodeURL and Cap are a Tahoe source's web API and root capability.
	// Cap is a secret, like Password.
	NodeURL string `json:"node_url,omitempty"`
	Cap     string `json:"cap,omitempty"`
}

// sshSettings are the options of an SFTP mount, resolved.
type sshSettings struct {
	Identities       []string `json:"identities,omitempty"` // absolute key files
	KnownHosts       string   `json:"known_hosts,omitempty"`
	AcceptNewHostKey bool     `json:"accept_new_host_key,omitempty"`
	Config           string   `json:"config,omitempty"`       // ssh_config file, "none", or "" (the default)
	Home             string   `json:"home,omitempty"`         // for ~/.ssh
	AgentSocket      string   `json:"agent_socket,omitempty"` // SSH_AUTH_SOCK
	// LeftoverAge is --leftover-age.
	LeftoverAge time.Duration `json:"leftover_age,omitempty"`
	// Passphrases were typed at the terminal for these key files: secrets,
	// like Password.
	Passphrases map[string]string `json:"passphrases,omitempty"`
}

// LogValue logs the settings without the password.
func (c *mountConfig) LogValue() slog.Value {
	auth := "none"
	switch {
	case c.Password != "":
		auth = "password from " + c.PasswordFrom
	case strings.HasPrefix(c.Source, "sftp:"):
		auth = "ssh keys or agent"
	case c.Cap != "":
		auth = "capability " + tahoe.Redact(c.Cap)
	}
	return slog.GroupValue(
		slog.String("source", c.Source), slog.String("user", c.User), slog.String("auth", auth),
		slog.String("mountpoint", c.Mountpoint), slog.String("cache_dir", c.CacheDir),
		tlsLogValue(c.TLS), slog.Bool("ro", c.ReadOnly),
		slog.Any("uid", c.UID), slog.Any("gid", c.GID),
		slog.String("file_mode", fmt.Sprintf("%04o", c.FileMode)), slog.String("dir_mode", fmt.Sprintf("%04o", c.DirMode)),
		slog.String("umask", fmt.Sprintf("%04o", c.Umask)),
		slog.Bool("allow_other", c.AllowOther), slog.Bool("default_permissions", c.DefaultPermissions),
		slog.Duration("timeout", c.Timeout), slog.Duration("attr_timeout", c.AttrTimeout),
		slog.Duration("dir_cache_time", c.DirCacheTime), slog.Int64("cache_size", c.CacheSize),
		slog.Int("transfers", c.Transfers), slog.Int("max_listing_entries", c.MaxListingEntries), slog.Int64("chunk_size", c.ChunkSize), slog.Duration("writeback_delay", c.WritebackDelay),
		slog.Duration("commit_interval", c.CommitInterval), slog.Bool("fsync_server", c.FsyncServer),
		slog.Bool("meta_file", !c.NoMetaFile),
		slog.Duration("drain_timeout", c.DrainTimeout),
		slog.String("log_level", c.LogLevel), slog.Bool("debug", c.Debug),
	)
}

// mountCommand is "cloudmount [mount] SOURCE MOUNTPOINT [flags]".
func mountCommand(args []string, stdout, stderr io.Writer) error {
	f, err := parseMountArgs(args)
	if err != nil {
		return err
	}
	if f.help {
		mountUsage(stdout)
		return nil
	}
	cfg, err := resolveMount(f)
	if err != nil {
		return err
	}
	warnInsecureTLS(cfg, stderr)
	if cfg.Foreground {
		return runForeground(cfg, stderr)
	}
	return startDaemon(cfg, stderr)
}

// resolveMount turns the flags into a mountConfig: it parses the source,
// checks the mountpoint, finds the password and picks the cache directory
// and log file. It runs before the daemon starts, so these errors come
// straight from the command the user ran.
func resolveMount(f *mountFlags) (*mountConfig, error) {
	src, err := parseSource(f.source)
	if err != nil {
		return nil, usageError{err}
	}
	user := src.User
	switch {
	case f.user == "" || f.user == user:
	case user == "":
		user = f.user
	case !f.userFromOption:
		return nil, usageErrorf("the URL names user %q but --user says %q", user, f.user)
	}
	cfg := &mountConfig{
		Source: src.URL.String(), MountpointArg: f.mountpoint,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		FileMode: f.fileMode.bits, DirMode: f.dirMode.bits, Umask: f.umask.bits,
		AllowOther: f.allowOther, DefaultPermissions: f.defaultPermissions,
		ReadOnly: f.readOnly, NonEmpty: f.nonempty,
		Timeout: time.Duration(f.timeout), AttrTimeout: time.Duration(f.attrTimeout),
		DirCacheTime: time.Duration(f.dirCacheTime), CacheSize: int64(f.cacheSize),
		Transfers: f.transfers, MaxListingEntries: f.maxListing, ChunkSize: int64(f.chunkSize), WritebackDelay: time.Duration(f.writebackDelay),
		CommitInterval: time.Duration(f.commitInterval), FsyncServer: f.fsync == "server",
		DrainTimeout: time.Duration(f.drainTimeout), NoMetaFile: !f.metaFile,
		Verbose: f.verbose, Debug: f.debug, Foreground: f.foreground,
		LogLevel: f.logLevel,
	}
	if f.verbose || f.debug {
		cfg.LogLevel = "debug"
	}
	if f.uid >= 0 {
		cfg.UID = uint32(f.uid)
	}
	if f.gid >= 0 {
		cfg.GID = uint32(f.gid)
	}
	if cfg.Mountpoint, err = mountutil.CheckMountpoint(f.mountpoint, f.nonempty); err != nil {
		return nil, err
	}
	for _, p := range []struct{ dst, src *string }{{&cfg.LogFile, &f.logFile}, {&cfg.CacheDir, &f.cacheDir}} {
		if *p.src != "" {
			if *p.dst, err = filepath.Abs(*p.src); err != nil {
				return nil, err
			}
		}
	}
	if err := resolveTLS(f, cfg, src); err != nil {
		return nil, err
	}
	lookup := mountutil.PasswordLookup{
		URL: cfg.Source, Mountpoint: secretsMountpoint(f.mountpoint), User: user,
		SecretsFile: f.secretsFile, SystemSecretsFile: mountutil.SystemSecretsFile, NetrcFile: mountutil.DefaultNetrcFile(),
		Command: f.passwordCommand, CommandStderr: os.Stderr,
		Prompt: mountutil.TerminalPrompt(),
	}
	if src.Kind.name == "tahoe" {
		if err := resolveTahoe(f, cfg, src, os.Stdin); err != nil {
			return nil, err
		}
		if tahoe.IsReadOnlyCap(cfg.Cap) {
			cfg.ReadOnly = true
		}
		lookup = mountutil.PasswordLookup{Optional: true} // a capability needs no password
		if f.passwordCommand != "" {
			return nil, usageErrorf("--password-command is not for tahoe: sources (a capability needs no password)")
		}
	} else if f.nodeDir != "" || f.nodeURL != "" || f.capFile != "" {
		return nil, usageErrorf("--node-dir, --node-url and --capfile are for tahoe: sources")
	}
	prompt := lookup.Prompt
	if src.Kind.name == "sftp" {
		if err := resolveSSH(f, cfg); err != nil {
			return nil, err
		}
		// Keys and the agent come first; a password is optional, from
		// the environment, the secrets files or a password command. The
		// terminal is asked for key passphrases only (unlockSSHKeys).
		lookup.NetrcFile, lookup.Prompt, lookup.Optional = "", nil, true
	} else if len(f.identities) > 0 || f.knownHosts != "" || f.acceptNewHostKey || f.sshConfig != "" {
		return nil, usageErrorf("--identity, --known-hosts, --accept-new-host-key and --ssh-config are for sftp sources")
	}
	creds, err := lookup.Resolve()
	if err != nil {
		return nil, err
	}
	if creds.User == "" {
		creds.User = user
	}
	cfg.User, cfg.Password, cfg.PasswordFrom = creds.User, creds.Password, creds.From
	if src.Kind.name == "sftp" {
		if err := unlockSSHKeys(cfg, prompt, os.Stderr); err != nil {
			return nil, err
		}
	}
	cfg.FSName = fsName(src.URL, cfg.User)
	if cfg.CacheDir == "" {
		base, err := mountutil.CacheHome()
		if err != nil {
			return nil, fmt.Errorf("cache directory: %w", err)
		}
		cfg.CacheDir = cache.DefaultDir(base, cfg.Source, cfg.User)
	}
	if cfg.LogFile == "" && !cfg.Foreground {
		if cfg.Syslog = findSyslogSocket(); cfg.Syslog == "" {
			cfg.LogFile = filepath.Join(cfg.CacheDir, daemonLogName)
		}
	}
	return cfg, nil
}

// secretsMountpoint is the mountpoint that secrets keyed by mountpoint are
// matched with: the absolute path as the user (or fstab) named it, symbolic
// links not resolved; mount.fuse3 may hand over /dev/fd/N instead, which
// matches nothing.
func secretsMountpoint(arg string) string {
	if _, ok := mountutil.FDMountpoint(arg); ok {
		return ""
	}
	a, err := filepath.Abs(arg)
	if err != nil {
		return ""
	}
	return a
}

// logPlace says where the daemon logs, for messages.
func (c *mountConfig) logPlace() string {
	if c.Syslog != "" {
		return describeSyslog(c.Syslog)
	}
	return c.LogFile
}

// startDaemon re-executes cloudmount in the background, hands it cfg and
// waits until it has mounted or failed.
func startDaemon(cfg *mountConfig, stderr io.Writer) error {
	d := mountutil.Daemon{
		Args:     mountutil.DaemonArgs(os.Args[0], cfg.FSName, cfg.Mountpoint),
		Env:      mountutil.DaemonEnv(os.Environ()),
		Settings: cfg,
		Timeout:  3*cfg.Timeout + 30*time.Second,
		LogFile:  cfg.logPlace(),
		Notice:   func(line string) { fmt.Fprintf(stderr, "cloudmount: %s\n", line) },
	}
	if fd, ok := mountutil.FDMountpoint(cfg.Mountpoint); ok {
		// mount.fuse3 -o drop_privileges: pass the open /dev/fuse on.
		d.Files = []*os.File{os.NewFile(uintptr(fd), cfg.Mountpoint)}
		child := *cfg
		child.Mountpoint = fmt.Sprintf("/dev/fd/%d", mountutil.InheritedFD(0))
		d.Settings = &child
	}
	pid, err := d.Start()
	if err != nil {
		return err
	}
	if cfg.Verbose {
		fmt.Fprintf(stderr, "cloudmount: mounted %s on %s (daemon pid %d, log %s)\n",
			cfg.FSName, cfg.MountpointArg, pid, cfg.logPlace())
	}
	return nil
}

// runForeground mounts in this process and returns once it is unmounted.
// It logs to the log file if one was given, else to stderr (with the
// journal's severity prefixes when stderr is the journal).
func runForeground(cfg *mountConfig, stderr io.Writer) error {
	// Programs started from here (fusermount3) need not see it.
	_ = os.Unsetenv(mountutil.PasswordEnv)
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	var log *slog.Logger
	if cfg.LogFile != "" {
		f, err := openLogFile(cfg.LogFile)
		if err != nil {
			return err
		}
		defer f.Close()
		log = newLogger(f, level)
	} else if f, ok := stderr.(*os.File); ok && journalStream(f) {
		log = journalStreamLogger(f, level)
	} else {
		log = newLogger(stderr, level)
	}
	slog.SetDefault(log)
	// Under systemd (Type=notify) the service is started once mounted.
	sd := takeServiceNotifier()
	tell := func(state string) {
		if err := sd.notify(state); err != nil {
			log.Warn("systemd not told", "state", state, "err", err)
		}
	}
	return serveMount(cfg, log, mountEvents{
		ready:     func(string) { tell("READY=1\nSTATUS=mounted " + cfg.FSName + " on " + cfg.Mountpoint) },
		unmounted: func() { tell("STOPPING=1\nSTATUS=unmounted; uploading what is queued") },
	})
}

// resolveSSH fills cfg.SSH from the flags: absolute file names, the home
// directory for ~/.ssh, the agent's socket.
func resolveSSH(f *mountFlags, cfg *mountConfig) error {
	home, err := mountutil.Home()
	if err != nil {
		return fmt.Errorf("home directory (for ~/.ssh): %w", err)
	}
	cfg.SSH = sshSettings{Home: home, AcceptNewHostKey: f.acceptNewHostKey, AgentSocket: os.Getenv("SSH_AUTH_SOCK"),
		LeftoverAge: time.Duration(f.leftoverAge)}
	abs := func(name, v string) (string, error) {
		if v == "" || v == "none" {
			return v, nil
		}
		if strings.HasPrefix(v, "~/") {
			v = filepath.Join(home, v[2:])
		}
		a, err := filepath.Abs(v)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(a); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return a, nil
	}
	for _, id := range f.identities {
		a, err := abs("--identity", id)
		if err != nil {
			return err
		}
		cfg.SSH.Identities = append(cfg.SSH.Identities, a)
	}
	if cfg.SSH.Config, err = abs("--ssh-config", f.sshConfig); err != nil {
		return err
	}
	if f.knownHosts != "" {
		// It may not exist yet: --accept-new-host-key creates it.
		v := f.knownHosts
		if strings.HasPrefix(v, "~/") {
			v = filepath.Join(home, v[2:])
		}
		if cfg.SSH.KnownHosts, err = filepath.Abs(v); err != nil {
			return err
		}
	}
	return nil
}
