package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// openWebDAV connects to the WebDAV collection of cfg; webdav.New verifies
// it and words its errors for the user (wrong password, TLS, unreachable,
// not a collection).
func openWebDAV(ctx context.Context, cfg *mountConfig, log *slog.Logger) (backends.Backend, error) {
	return webdav.New(ctx, webdav.Config{
		URL: cfg.Source, User: cfg.User, Password: cfg.Password,
		TLS: cfg.TLS, Timeout: cfg.Timeout, Logger: log,
		MaxListingEntries: cfg.MaxListingEntries, ChunkSize: cfg.ChunkSize,
	})
}

// newDAVHandler is the embedded demo server's handler for dir.
func newDAVHandler(dir, user, password string, log *slog.Logger) (http.Handler, error) {
	return davserver.New(dir, davserver.Options{User: user, Password: password, Logger: log})
}
