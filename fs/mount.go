package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mount probes the backend's capabilities, mounts it at mountpoint and returns
// the running server once the kernel has the mount. The caller waits on it
// with Wait and unmounts with Unmount.
func Mount(mountpoint string, b backends.Backend, store *cache.Store, o Options) (*fuse.Server, error) {
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("cannot use /dev/fuse (%w): load the fuse module and install fuse3, which makes it usable by every user", err)
	} else {
		f.Close()
	}
	root, err := newRoot(b, store, o)
	if err != nil {
		return nil, err
	}
	o = root.fs.opts
	attr := o.AttrTimeout
	mo := fuse.MountOptions{
		FsName:       o.FSName,
		Name:         "cloudmount",
		AllowOther:   o.AllowOther,
		MaxWrite:     1 << 20,
		MaxReadAhead: 1 << 20,
		Debug:        o.Debug,
	}
	if o.DefaultPermissions {
		mo.Options = append(mo.Options, "default_permissions")
	}
	if o.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	server, err := fusefs.Mount(mountpoint, root, &fusefs.Options{
		MountOptions:    mo,
		EntryTimeout:    &attr,
		AttrTimeout:     &attr,
		NegativeTimeout: &attr,
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return server, nil
}

// newRoot checks the server's root, probes capabilities and returns the root
// node of a mount.
func newRoot(b backends.Backend, store *cache.Store, o Options) (*Node, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.AttrTimeout <= 0 {
		o.AttrTimeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*o.Timeout)
	defer cancel()
	caps, err := b.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", b, err)
	}
	o.Logger.Info("server capabilities", "backend", b.String(),
		"metadata_on_server", caps.MetaStore, "mtime_on_put", caps.MTimeOnPut,
		"conditional_put", caps.ConditionalPut, "quota", caps.Quota, "notes", caps.Notes)
	if !caps.MetaStore {
		o.Logger.Info("the server cannot store mtime, mode and owner; they are kept in the local index", "cache_dir", store.Dir)
	}
	e, err := b.Stat(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("stat root of %s: %w", b, err)
	}
	e.Name = ""
	f := &fsys{be: b, store: store, caps: caps, opts: o, log: o.Logger,
		inos: newInodeNumbers(), dirs: newDirCache(o.AttrTimeout)}
	root := &Node{fs: f, fetched: time.Now()}
	root.entry = f.resolve("", e)
	return root, nil
}
