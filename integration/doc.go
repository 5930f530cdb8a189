// Package integration mounts the built cloudmount binary through real FUSE
// against real WebDAV servers that the tests start on loopback in temporary
// directories: Apache httpd with mod_dav (its own config, its own process),
// nginx with the dav and dav-ext modules (likewise) and `rclone serve
// webdav`. No mock stands in for a server here.
//
// Run it with `make test`, or `go test -v -timeout 60m ./integration/` as
// root. With CI set, a tool or server that cannot be started fails the run;
// without it, the tests that need it are skipped with the reason.
package integration
