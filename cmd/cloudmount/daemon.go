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
	log, out, closeLog, err := openDaemonLog(&cfg)
	if err != nil {
		_ = h.Report(err)
		return silentError{mountutil.ExitMountFailed}
	}
	defer closeLog()
	slog.SetDefault(log)
	if err := mountutil.RedirectOutput(out); err != nil {
		log.Warn("output of libraries and panics will be lost", "err", err)
	}
	// The session has no terminal; a SIGHUP means nothing to a daemon.
	signal.Ignore(syscall.SIGHUP)
	err = serveMount(&cfg, log, mountEvents{ready: func(notice string) {
		if err := h.ReportReady(notice); err != nil {
			log.Warn("the command that started the mount is gone; staying mounted", "err", err)
		}
	}})
	if err != nil {
		log.Error("mount failed", "err", err)
		_ = h.Report(err)
		return silentError{mountutil.ExitMountFailed}
	}
	return nil
}

// File names in the cache directory: the daemon's log when there is no
// system log, and, when there is one, what the daemon writes outside its
// log (a panic's stack trace).
const (
	daemonLogName = "daemon.log"
	crashLogName  = "crash.log"
)

// openDaemonLog opens the daemon's log: the system log when cfg names its
// socket (daemon.log in the cache directory if it cannot be reached), else
// the log file. out is the file for the daemon's standard output and error.
func openDaemonLog(cfg *mountConfig) (log *slog.Logger, out *os.File, closeLog func(), err error) {
	level, err := parseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, nil, nil, err
	}
	var sysErr error
	if cfg.Syslog != "" {
		crash, err := openLogFile(filepath.Join(cfg.CacheDir, crashLogName))
		if err != nil {
			return nil, nil, nil, err
		}
		conn, err := dialSyslog(cfg.Syslog, crash)
		if err == nil {
			return newPriorityLogger(conn.send, level), crash, func() { conn.Close(); crash.Close() }, nil
		}
		crash.Close()
		sysErr = err
		cfg.LogFile = filepath.Join(cfg.CacheDir, daemonLogName)
	}
	f, err := openLogFile(cfg.LogFile)
	if err != nil {
		return nil, nil, nil, err
	}
	log = newLogger(f, level)
	if sysErr != nil {
		log.Warn("the system log cannot be reached: logging here", "err", sysErr)
	}
	return log, f, func() { f.Close() }, nil
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
