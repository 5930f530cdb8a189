package fs

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mounted is a running mount: the FUSE server and the write-back queue.
type Mounted struct {
	// Server is the FUSE server: Wait for the unmount, Unmount to ask for it.
	Server *fuse.Server
	f      *fsys
}

// Status reports the write-back queue and the connection.
func (m *Mounted) Status() cache.Status {
	st := m.f.q.Status()
	st.Cache = m.f.store.Blocks.Stats()
	st.Server = serverNote(m.f.caps)
	return st
}

// Notice is what a user should know about the server at mount, in one
// line: what it does not keep or check (see serverNote); "" when it keeps
// and checks everything.
func (m *Mounted) Notice() string {
	if m.f.caps.StoresAll() && m.f.caps.ConditionalPut {
		return ""
	}
	return serverNote(m.f.caps)
}

// serverNote says in words what the server keeps of the metadata and who
// detects other clients' changes.
func serverNote(c backends.Capabilities) string {
	var kept, local []string
	for _, f := range []struct {
		name string
		f    backends.MetaField
	}{{"mtime", c.MTime}, {"mode", c.Mode}, {"owner", c.Owner}, {"sha256", c.Hash}, {"file type", c.Type}} {
		switch {
		case f.f.Stored && f.f.Precision == time.Second:
			kept = append(kept, f.name+" (to the second)")
		case f.f.Stored && f.f.Precision > 0:
			kept = append(kept, f.name+" (to "+f.f.Precision.String()+")")
		case f.f.Stored:
			kept = append(kept, f.name)
		default:
			local = append(local, f.name)
		}
	}
	var parts []string
	if len(kept) > 0 && c.MetaFile != "" {
		parts = append(parts, "the server keeps "+strings.Join(kept, ", ")+" in a metadata file per directory ("+c.MetaFile+", hidden)")
	} else if len(kept) > 0 {
		parts = append(parts, "the server keeps "+strings.Join(kept, ", "))
	}
	if len(local) > 0 {
		parts = append(parts, "only this machine's cache keeps "+strings.Join(local, ", ")+" (another machine sees the server's)")
	}
	if c.ConditionalPut {
		parts = append(parts, "the server checks for other clients' changes")
	} else {
		parts = append(parts, "cloudmount checks for other clients' changes just before each upload (the server cannot)")
	}
	if c.ReadOnly {
		parts = append(parts, "the server refuses changes: read-only")
	}
	return strings.Join(parts, "; ")
}

// Sync waits until everything committed before the call is on the server.
func (m *Mounted) Sync(ctx context.Context, progress func(cache.Status)) error {
	return m.f.q.Sync(ctx, progress)
}

// Drain uploads what is queued, waiting up to timeout after the unmount,
// and stops the queue. It returns the number of files left in the journal.
func (m *Mounted) Drain(timeout time.Duration) int {
	return m.DrainContext(context.Background(), timeout)
}

// DrainContext is Drain that stops early when ctx ends; what is left stays
// in the journal for the next mount.
func (m *Mounted) DrainContext(ctx context.Context, timeout time.Duration) int {
	m.f.pre.stop()
	left := m.f.q.DrainContext(ctx, timeout)
	m.f.q.Close()
	return left
}

// Mount probes the backend's capabilities, mounts it at mountpoint and returns
// the running mount once the kernel has it. The caller waits on its Server
// with Wait, unmounts with Unmount, then calls Drain.
func Mount(mountpoint string, b backends.Backend, store *cache.Store, o Options) (*Mounted, error) {
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
		Logger:       fuseLogger(o),
		// No FUSE_POSIX_ACL: Getxattr answers ACL reads "not supported"
		// (node_xattr.go), which with it on would fail the kernel's own
		// permission checks; it would also force default_permissions on,
		// and the ACLs it caches are dropped at every READDIRPLUS and
		// lookup, so ls -l would still ask for every file.
		EnableAcl: false,
	}
	if o.DefaultPermissions {
		mo.Options = append(mo.Options, "default_permissions")
	}
	if o.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	negative := o.DirCacheTime
	server, err := fusefs.Mount(mountpoint, root, &fusefs.Options{
		MountOptions:    mo,
		EntryTimeout:    &attr,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
	})
	if err != nil {
		root.fs.pre.stop()
		root.fs.q.Close()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return &Mounted{Server: server, f: root.fs}, nil
}

// fuseLogger passes go-fuse's messages to the mount's log: each request
// at debug level with Debug, otherwise its rare complaints at info level.
func fuseLogger(o Options) *log.Logger {
	level := slog.LevelInfo
	if o.Debug {
		level = slog.LevelDebug
	}
	return slog.NewLogLogger(o.Logger.Handler(), level)
}

// newRoot checks the server's root, probes capabilities and returns the root
// node of a mount.
func newRoot(b backends.Backend, store *cache.Store, o Options) (*Node, error) {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 2*o.Timeout)
	defer cancel()
	caps, err := b.Capabilities(ctx)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", b, err)
	}
	o.Logger.Info("server capabilities", "backend", b.String(), "capabilities", describeCaps(caps), "notes", caps.Notes)
	if caps.ReadOnly && !o.ReadOnly {
		o.Logger.Warn("the server refuses changes: the mount is read-only")
		o.ReadOnly = true
	}
	if !caps.StoresAll() {
		o.Logger.Info("what the server cannot store with the files is kept in the local index", "cache_dir", store.Dir)
	}
	e, err := b.Stat(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("stat root of %s: %w", b, err)
	}
	e.Name = ""
	f := &fsys{be: b, store: store, caps: caps, opts: o, log: o.Logger,
		inos: newInodeNumbers(), dirs: newDirCache(o.DirCacheTime), pre: newPrefetcher(),
		live: &liveNodes{byP: map[string]*Node{}}}
	root := &Node{fs: f, fetched: time.Now()}
	root.entry = f.resolve("", e)
	q, recs, err := store.OpenQueue(f, cache.QueueOptions{Transfers: o.Transfers, Delay: o.WritebackDelay, CommitInterval: o.CommitInterval, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	f.q = q
	for _, rec := range recs {
		f.replayed = max(f.replayed, rec.Seq)
		if rec.IsChange() {
			continue
		}
		n, err := f.detachedNode(rec)
		if err != nil {
			o.Logger.Error("a queued file cannot be shown in the mount; it is still uploaded", "path", rec.Path, "err", err)
			continue
		}
		if n != nil {
			f.live.set(rec.Path, n)
		}
	}
	q.Start()
	return root, nil
}

// describeCaps renders capabilities for the start-up log: what the server
// keeps and can do, one word each.
func describeCaps(c backends.Capabilities) string {
	var words []string
	field := func(name string, f backends.MetaField) {
		switch {
		case !f.Stored:
			words = append(words, name+":local")
		case f.Precision > 0:
			words = append(words, name+":server/"+f.Precision.String())
		default:
			words = append(words, name+":server")
		}
	}
	field("mtime", c.MTime)
	field("mode", c.Mode)
	field("owner", c.Owner)
	field("sha256", c.Hash)
	field("type", c.Type)
	for _, b := range []struct {
		name string
		on   bool
	}{{"symlinks", c.Symlinks}, {"hardlinks", c.HardLinks}, {"server_hashes", c.Hashes}, {"conditional_put", c.ConditionalPut},
		{"atomic_put", c.AtomicPut}, {"atomic_rename", c.AtomicRename}, {"read_only", c.ReadOnly}, {"quota", c.Quota}} {
		if b.on {
			words = append(words, b.name)
		}
	}
	return strings.Join(words, " ")
}
