package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/sidecar"
	"github.com/cloudmount/cloudmount/cache"
	"github.com/cloudmount/cloudmount/fs"
	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// noPermissionsWarning is logged at every start of a mount with
// allow_other and default_permissions turned off.
const noPermissionsWarning = "allow_other without default_permissions: every local user can read, change and delete " +
	"every file of this mount with your credentials on the server, whatever the modes say; " +
	"remove default_permissions=false unless that is what you want"

// errInterrupted is the outcome of a signal before the mount was ready.
var errInterrupted = errors.New("interrupted before the mount was ready")

// mountEvents are called as a mount goes: ready once the kernel has it,
// unmounted once it is gone (the upload queue drains after it). Either may
// be nil.
type mountEvents struct {
	// ready gets what the user should know about the server ("" if
	// nothing).
	ready     func(notice string)
	unmounted func()
}

// serveMount runs one mount, in the foreground process or in the daemon:
// it opens the backend and the cache, mounts, calls ready, and serves until
// the filesystem is unmounted (fusermount3 -u, cloudmount unmount) or a
// signal asks it to unmount. It returns nil after a clean unmount.
func serveMount(cfg *mountConfig, log *slog.Logger, ev mountEvents) error {
	sigs := make(chan os.Signal, 2)
	caught := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if cfg.Foreground {
		caught = append(caught, syscall.SIGHUP)
	}
	signal.Notify(sigs, caught...)
	defer signal.Stop(sigs)

	log.Info("starting cloudmount", "version", versionString(), "pid", os.Getpid(), "config", cfg)
	defer startProfile(log)()
	if cfg.AllowOther && !cfg.DefaultPermissions {
		log.Warn(noPermissionsWarning)
	}
	if cfg.TLS.Insecure {
		log.Warn(insecureTLSWarning)
	}
	// Without a control socket, status and sync cannot reach the mount:
	// better no mount than one that backup scripts cannot sync.
	noControl := false
	if err := checkControlPlace(cfg.Mountpoint, os.Geteuid()); errors.Is(err, errMountpointUnknown) {
		noControl = true
		log.Warn("no control socket: status, sync and verify will not reach this mount", "err", err)
	} else if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWatch := watchSignals(sigs, cancel)
	m, closeAll, err := setUp(ctx, cfg, log)
	stopWatch()
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	defer closeAll()
	if !noControl {
		stop, err := startControl(cfg.Mountpoint, m, log)
		if err != nil {
			log.Error("no control socket: unmounting again", "err", err)
			if uerr := m.Server.Unmount(); uerr != nil {
				log.Error("unmount failed", "err", strings.TrimSpace(uerr.Error()))
			}
			m.Drain(0)
			return err
		}
		defer stop() // after the drain: status and sync answer while it runs
	}
	notice := m.Notice()
	if notice != "" {
		log.Info("about the server", "notice", notice)
	}
	if ev.ready != nil {
		ev.ready(notice)
	}
	log.Info("mounted", "mountpoint", cfg.Mountpoint, "source", cfg.FSName)
	if ctx.Err() != nil {
		// A signal arrived while the kernel was taking the mount.
		select {
		case sigs <- syscall.SIGTERM:
		default: // another signal is queued already
		}
	}
	waitUnmount(m.Server, sigs, log)
	log.Info("unmounted", "mountpoint", cfg.Mountpoint)
	if ev.unmounted != nil {
		ev.unmounted()
	}
	// A signal ends the drain: a new mount of the same cache directory
	// takes the queue over, or the user wants the daemon gone.
	dctx, stopDrain := context.WithCancel(context.Background())
	defer stopDrain()
	go func() {
		select {
		case s := <-sigs:
			log.Info("upload queue handed over: what is left stays in the journal for the next mount", "signal", s.String())
			stopDrain()
		case <-dctx.Done():
		}
	}()
	m.DrainContext(dctx, cfg.DrainTimeout)
	return nil
}

// watchSignals cancels the set-up on the first signal. The returned stop
// function returns once the watcher is gone, so that afterwards a signal is
// seen either as a cancelled context or in sigs, never lost.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc) (stop func()) {
	done, gone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(gone)
		select {
		case s := <-sigs:
			slog.Info("signal received: cancelling", "signal", s.String())
			cancel()
		case <-done:
		}
	}()
	return func() { close(done); <-gone }
}

// setUp opens the backend and the cache directory and mounts. On error
// everything opened so far is closed again; on success closeAll closes it
// after the unmount.
func setUp(ctx context.Context, cfg *mountConfig, log *slog.Logger) (m *fs.Mounted, closeAll func(), err error) {
	if _, err := mountutil.CheckMountpoint(cfg.Mountpoint, cfg.NonEmpty); err != nil {
		return nil, nil, err
	}
	if err := mountutil.CheckFUSE(); err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(cfg.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	kind, ok := sourceSchemes[u.Scheme]
	if !ok {
		return nil, nil, fmt.Errorf("unsupported source scheme %q", u.Scheme)
	}
	b, err := kind.open(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("connected", "backend", kind.name, "remote", b.String())
	if kind.metaFile && !cfg.NoMetaFile {
		// A write of a directory's metadata file is a check, an upload
		// and a stat: three calls.
		b = sidecar.Wrap(b, sidecar.Options{Logger: log, Timeout: 3 * cfg.Timeout, Fresh: max(cfg.DirCacheTime, time.Nanosecond)})
	}
	store, err := openStore(cfg, log)
	if err != nil {
		closeBackend(b, log)
		return nil, nil, err
	}
	m, err = fs.Mount(cfg.Mountpoint, b, store, fs.Options{
		UID: cfg.UID, GID: cfg.GID, Privileged: os.Geteuid() == 0,
		FileMode: os.FileMode(cfg.FileMode), DirMode: os.FileMode(cfg.DirMode), Umask: os.FileMode(cfg.Umask),
		ReadOnly: cfg.ReadOnly, Timeout: cfg.Timeout, AttrTimeout: cfg.AttrTimeout,
		DirCacheTime: cfg.DirCacheTime, Transfers: cfg.Transfers, WritebackDelay: cfg.WritebackDelay,
		CommitInterval: cfg.CommitInterval, FsyncServer: cfg.FsyncServer,
		AllowOther: cfg.AllowOther, DefaultPermissions: cfg.DefaultPermissions,
		FSName: cfg.FSName, Debug: cfg.Debug, Logger: log,
	})
	if err != nil {
		closeStore(store, log)
		closeBackend(b, log)
		return nil, nil, fmt.Errorf("mount %s: %w", cfg.MountpointArg, err)
	}
	return m, func() { closeStore(store, log); closeBackend(b, log) }, nil
}

// waitUnmount serves until the kernel drops the mount. A signal asks for an
// unmount; if that fails (busy), the mount stays and a later signal tries
// again.
func waitUnmount(srv *fuse.Server, sigs <-chan os.Signal, log *slog.Logger) {
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			log.Info("unmounting", "signal", s.String())
			if err := srv.Unmount(); err != nil {
				log.Error("unmount failed; still mounted (close what uses it and try again)",
					"err", strings.TrimSpace(err.Error()))
			}
		}
	}
}

// closeStore closes the cache directory, logging a failure.
func closeStore(s *cache.Store, log *slog.Logger) {
	if err := s.Close(); err != nil {
		log.Error("close cache", "err", err)
	}
}

// closeBackend closes the backend, logging a failure.
func closeBackend(b backends.Backend, log *slog.Logger) {
	if err := b.Close(); err != nil {
		log.Error("close backend", "err", err)
	}
}
