package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/cloudmount/cloudmount/backends/tlsclient"
)

// insecureTLSWarning is logged at every start of a mount with
// --insecure-tls.
const insecureTLSWarning = "insecure_tls: the server's TLS certificate is not checked (authority, dates, host name): " +
	"anyone between you and the server can read and change what you send, your password included; " +
	"pass --ca FILE with the server's CA, or --pin-sha256 with its key, and remove insecure_tls"

// resolveTLS fills cfg.TLS from the flags: one CA file (--ca or its older
// name --ca-file), pins, the client certificate, absolute file names. It
// reads the files now, so that what is wrong with them is said by the
// command the user ran.
func resolveTLS(f *mountFlags, cfg *mountConfig, src source) error {
	ca := f.ca
	switch {
	case ca == "":
		ca = f.caFile
	case f.caFile != "" && f.caFile != ca:
		return usageErrorf("--ca and --ca-file name different files (--ca-file is the older name of --ca: give one)")
	}
	set := ca != "" || len(f.pins) > 0 || f.clientCert != "" || f.clientKey != "" || f.insecureTLS
	if !set {
		return nil
	}
	if src.Kind.name != "webdav" {
		return usageErrorf("--ca, --pin-sha256, --client-cert, --client-key and --insecure-tls are for https sources")
	}
	if src.Kind.scheme != "https" && (len(f.pins) > 0 || f.clientCert != "" || f.clientKey != "") {
		// The user expects a protection that plain http cannot give.
		return usageErrorf("--pin-sha256, --client-cert and --client-key need an https:// source, not %s://", src.URL.Scheme)
	}
	s := tlsclient.Settings{Insecure: f.insecureTLS}
	for _, p := range f.pins {
		if _, err := tlsclient.ParsePins(p); err != nil {
			return usageErrorf("--pin-sha256: %v", err)
		}
		s.Pins = append(s.Pins, p)
	}
	for _, p := range []struct {
		dst *string
		src string
	}{{&s.CAFile, ca}, {&s.ClientCert, f.clientCert}, {&s.ClientKey, f.clientKey}} {
		if p.src == "" {
			continue
		}
		abs, err := filepath.Abs(p.src)
		if err != nil {
			return err
		}
		*p.dst = abs
	}
	if src.Kind.scheme == "https" {
		if _, err := s.Config(); err != nil {
			return err
		}
	}
	cfg.TLS = s
	return nil
}

// tlsLogValue is the TLS settings for the start-up log.
func tlsLogValue(s tlsclient.Settings) slog.Attr {
	return slog.Group("tls", slog.String("ca", s.CAFile), slog.String("pins", strings.Join(s.Pins, ";")),
		slog.String("client_cert", s.ClientCert), slog.String("client_key", s.ClientKey),
		slog.Bool("insecure", s.Insecure))
}

// warnInsecureTLS says on w that the certificate goes unchecked, where
// the log does not go to w already.
func warnInsecureTLS(cfg *mountConfig, w io.Writer) {
	if cfg.TLS.Insecure && cfg.LogFile != "" {
		fmt.Fprintf(w, "cloudmount: warning: %s\n", insecureTLSWarning)
	}
}
