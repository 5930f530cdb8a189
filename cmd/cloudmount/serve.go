package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
	"github.com/spf13/pflag"
)

// serveCommand is "cloudmount serve webdav DIR": a small WebDAV server for
// the demo and for trying cloudmount without a server. It runs until
// SIGINT or SIGTERM.
func serveCommand(args []string, stdout, stderr io.Writer) error {
	flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	addr := flags.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT` (port 0 picks a free one)")
	user := flags.String("user", "", "require this user `NAME`, with the password from $"+mountutil.PasswordEnv)
	verbose := flags.BoolP("verbose", "v", false, "log every request")
	help := flags.BoolP("help", "h", false, "show this help")
	if err := flags.Parse(args); err != nil {
		return usageError{err}
	}
	if *help {
		return writeHelp(stdout, serveUsageHead, flags, "")
	}
	if flags.NArg() != 2 || flags.Arg(0) != "webdav" {
		return usageErrorf("want: cloudmount serve webdav DIR [--addr HOST:PORT] [--user NAME]")
	}
	dir := flags.Arg(1)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	password := ""
	if *user != "" {
		if password = os.Getenv(mountutil.PasswordEnv); password == "" {
			return usageErrorf("--user %s needs the password in $%s", *user, mountutil.PasswordEnv)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level)
	h, err := newDAVHandler(dir, *user, password, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	url := "http://" + ln.Addr().String() + "/"
	mountURL := url
	if *user != "" {
		mountURL = "http://" + *user + "@" + ln.Addr().String() + "/"
	}
	log.Info("serving WebDAV", "dir", dir, "url", url, "auth", *user != "")
	log.Info("mount it with: cloudmount " + mountURL + " MOUNTPOINT")
	if *user == "" && !isLoopback(ln.Addr()) {
		log.Warn("no --user: anyone who can reach this address can read and change " + dir)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// isLoopback reports whether a listening address is on the loopback
// interface only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
