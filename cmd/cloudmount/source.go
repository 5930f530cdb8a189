package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// backendKind is one kind of remote store and how to open it.
type backendKind struct {
	// name is the backend's name for logs ("webdav").
	name string
	// scheme is the URL scheme the backend is given ("davs" → "https").
	scheme string
	// open connects to the source of cfg, verifying it.
	open func(ctx context.Context, cfg *mountConfig, log *slog.Logger) (backends.Backend, error)
	// metaFile: where the server keeps no metadata with the files, it is
	// kept in a file per directory (package sidecar), unless
	// --meta-file=false.
	metaFile bool
}

// sourceSchemes maps the URL scheme of SOURCE to its backend. This is the one
// list of backends (package backends does not know them).
var sourceSchemes = map[string]backendKind{
	"https": {name: "webdav", scheme: "https", open: openWebDAV, metaFile: true},
	"http":  {name: "webdav", scheme: "http", open: openWebDAV, metaFile: true},
	"davs":  {name: "webdav", scheme: "https", open: openWebDAV, metaFile: true},
	"dav":   {name: "webdav", scheme: "http", open: openWebDAV, metaFile: true},
	"sftp":  sftpKind,
	"tahoe": tahoeKind,
}

// source is a parsed SOURCE argument.
type source struct {
	// URL is the canonical URL: the backend's scheme, lower-case host, no
	// default port, no user, a path ending in '/'.
	URL *url.URL
	// User is the user named in the URL ("" if none).
	User string
	// Kind is the backend that serves it.
	Kind backendKind
}

// supportedSchemes lists the schemes for error messages.
func supportedSchemes() string {
	var s []string
	for k := range sourceSchemes {
		if k == "tahoe" {
			s = append(s, "tahoe:ALIAS")
			continue
		}
		s = append(s, k+"://")
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

// parseSource parses SOURCE. Errors never repeat the argument, which might
// hold a password.
func parseSource(raw string) (source, error) {
	if s, ok, err := parseTahoeSource(raw); ok || err != nil {
		return s, err
	}
	if s, ok, err := parseSFTPSource(raw); ok || err != nil {
		return s, err
	}
	u, err := url.Parse(raw)
	var ue *url.Error
	switch {
	case errors.As(err, &ue) && !strings.Contains(raw, "@"):
		return source{}, fmt.Errorf("SOURCE is not a valid URL (%v); cloudmount mounts %s URLs", ue.Err, supportedSchemes())
	case err != nil:
		// The details could quote a password.
		return source{}, fmt.Errorf("SOURCE is not a valid URL; cloudmount mounts %s URLs", supportedSchemes())
	case u.Scheme == "":
		return source{}, fmt.Errorf("SOURCE must be a URL such as https://host/path/ or an SSH location such as user@host:path; cloudmount mounts %s URLs", supportedSchemes())
	}
	if _, ok := u.User.Password(); ok {
		return source{}, errors.New("do not put passwords in the URL; use the secrets file (" + secretsHint + ")")
	}
	kind, ok := sourceSchemes[strings.ToLower(u.Scheme)]
	if !ok {
		return source{}, fmt.Errorf("unsupported source scheme %q: cloudmount mounts %s URLs", u.Scheme, supportedSchemes())
	}
	if u.Opaque != "" {
		return source{}, fmt.Errorf("SOURCE must be a URL such as %s://host/path/", u.Scheme)
	}
	if u.Hostname() == "" {
		return source{}, fmt.Errorf("SOURCE %s has no host", u.Redacted())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return source{}, fmt.Errorf("SOURCE %s: a query (?...) or fragment (#...) is not allowed", u.Redacted())
	}
	s := source{User: u.User.Username(), Kind: kind}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && port != map[string]string{"https": "443", "http": "80"}[kind.scheme] {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	p, rawPath := u.Path, u.RawPath
	if !strings.HasSuffix(p, "/") {
		p += "/"
		if rawPath != "" {
			rawPath += "/"
		}
	}
	s.URL = &url.URL{Scheme: kind.scheme, Host: host, Path: p, RawPath: rawPath}
	return s, nil
}

// secretsHint is the secrets file's form, for messages.
const secretsHint = "~/.config/cloudmount/secrets: \"URL user password\", mode 0600"

// fsName is the source as /proc/mounts and df show it: the canonical URL
// with the user, never a password; commas are escaped because the kernel
// splits mount options on them.
func fsName(src *url.URL, user string) string {
	u := *src
	if user != "" {
		u.User = url.User(user)
	}
	return strings.ReplaceAll(u.String(), ",", "%2C")
}
