package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cloudmount/cloudmount/mountutil"
)

// daemonCommand is the background half of a mount: started by startDaemon
// with the settings on an inherited pipe, it logs to its log file, mounts,
// reports the outcome to the command that started it and serves until
// unmounted.
func daemonCommand() error {
	var cfg mountConfig
	h, err := mountutil.ReceiveHandoff(&cfg)
	if err != nil {
		return usageError{err}
	}
	f, err := openLogFile(cfg.LogFile)
	if err != nil {
		_ = h.Report(err)
		return silentError{mountutil.ExitMountFailed}
	}
	defer f.Close()
	log := newLogger(f, cfg.Verbose)
	slog.SetDefault(log)
	if err := mountutil.RedirectOutput(f); err != nil {
		log.Warn("output of libraries and panics will be lost", "err", err)
	}
	// The session has no terminal; a SIGHUP means nothing to a daemon.
	signal.Ignore(syscall.SIGHUP)
	err = serveMount(&cfg, log, func() {
		if err := h.Report(nil); err != nil {
			log.Warn("the command that started the mount is gone; staying mounted", "err", err)
		}
	})
	if err != nil {
		log.Error("mount failed", "err", err)
		_ = h.Report(err)
		return silentError{mountutil.ExitMountFailed}
	}
	return nil
}

// openLogFile opens (appends to) a log file, creating it 0600 and its
// directory 0700.
func openLogFile(path string) (*os.File, error) {
	if path == "" {
		return nil, fmt.Errorf("no log file")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}
