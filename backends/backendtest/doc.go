// Package backendtest is the conformance suite every backend passes (Run),
// and this comment is the contract a new backend implements. backend.go
// and errors.go in package backends hold the interface; this page says how
// its parts fit, and lists at the end what the suite decided where
// backend.go is silent.
//
// # The interface
//
// A backend is a package under backends/ whose constructor returns a
// backends.Backend: Stat, List, Read, Put, Mkdir, Remove, Rename,
// Capabilities, Close, String. Paths are slash-separated and relative to
// the mount's root: "" and "/" are the root, "a/b" is b in directory a. A
// name is any bytes but "/" and NUL, up to backends.MaxNameBytes; escape it
// for the wire (URL, href, command) and give it back from List byte for
// byte. String names the server for logs, never a password or capability.
//
// A backend is used from many goroutines at once. Every call takes a
// context and honours it: a call whose context has ended fails promptly
// with an error matching ctx.Err() and changes nothing, and a reader from
// Read stops once the context of its Read ends. Where a library takes no
// context, close the connection when the context ends.
//
// # Files and versions
//
// Put stores a whole file from r: size bytes exactly, or -1 when unknown.
// A failure of r makes Put fail with an error that wraps it (the caller
// tells its own disk from the server). It returns the entry Stat gives
// right after. Read(off, length) streams length bytes from off (-1: to the
// end); at or after the end it is an empty stream, not an error.
//
// Entry.Version names a file's content: the same Version means the same
// bytes, and a new content gets a new Version. Take the server's ETag or
// content hash; where there is none, backends.StatVersion from size and
// mtime (and inode), the one case where a rewrite of the same size within
// the mtime's granularity may keep the Version. Put, Stat and List give the
// same Version for one state; a file never has an empty one. ModTime is the
// stored mtime where there is one, else the server's last change.
//
// # Errors
//
// Wrap the sentinels of errors.go with context (fmt.Errorf("put %s: %w",
// p, backends.ErrNotFound)); the fs maps them to errno in one table.
// ErrNotFound: nothing there, or a missing parent. ErrNotDir: List of a
// file, a directory renamed onto a file. ErrIsDir: Read or Put of a
// directory, a file renamed onto one. ErrExist: Mkdir, Symlink, Link or a
// Rename without overwrite where something is. ErrNotEmpty: Remove of, or
// a Rename onto, a directory with children. ErrPrecondition: a condition
// (PutOptions.IfMatch, SetMeta's ifVersion) that no longer holds.
// ErrReadOnly: a change on a read-only server. ErrUnsupported is for what
// the server cannot do at all, never for a case above that the server
// happens to answer with "not allowed". ErrLocked: a lock another client
// holds (it passes: uploads are retried); ErrPermission is for refusals
// that stay.
//
// # Capabilities and metadata
//
// Capabilities says what the server can do; it is worked out once (probe
// lazily if needed) and is the same on every call. The fs decides from its
// fields only, never from the backend's type. For each kind of metadata
// (mtime, mode, owner, hash, type) a MetaField says whether the server
// keeps it (Stored), with the upload (OnPut), and to what Precision (an
// mtime). Stored means kept with the file and settable by SetMeta; OnPut
// that Put stores it with the content, which a kind can be without being
// Stored (an mtime sent as X-OC-Mtime, which only an upload can change).
// The fs sends the server only what it keeps (Capabilities.Split) and
// keeps the rest in its local index, tied to the Version. Put and SetMeta
// store the kept fields they are given and ignore the others without an
// error; when the content is stored but a second request for its metadata
// fails, Put returns the entry and ErrMetaNotStored.
// ConditionalPut, AtomicPut and AtomicRename say how strong the server's
// guarantees are (Put honours IfMatch and IfNoneMatch in any case);
// ReadOnly that every change is refused; Symlinks, HardLinks and Quota
// promise the optional interfaces below.
//
// # Optional interfaces
//
// MetaSetter stores metadata after the upload (chmod, touch, chown; a
// backend that keeps any kind implements it). SizedReader reads a file of
// a size the caller knows, failing with ErrProtocol when the server's file
// has another. QuotaReader gives statfs figures. Symlinker makes native
// links: their entries have Meta.Type "symlink" and LinkTarget, the target
// kept as given and never followed. Linker makes hard links. Hasher gives
// the server's SHA-256 of a file.
//
// # Testing a backend
//
// Call Run from a test of the backend's package, with an opener that gives
// each subtest an empty root of its own and closes it afterwards:
//
//	func TestContract(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backends.Backend {
//			b := mustOpen(t, freshDirectory(t))
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// # Decided by this suite
//
// Where backend.go is silent, the suite asserts what the fs above needs:
//
//   - Put with IfNoneMatch over a file fails with an error matching both
//     ErrExist (an O_EXCL create) and ErrPrecondition (a failed condition);
//     over a directory with ErrExist or ErrIsDir. IfMatch where no file is
//     fails with ErrPrecondition and creates nothing.
//   - Put, Mkdir and Stat below a path that is a file fail with ErrNotFound
//     or ErrNotDir; Put or Read of a directory, the root included, with
//     ErrIsDir; Mkdir of the root with ErrExist.
//   - Remove of the root fails with ErrPermission; Rename of or onto the
//     root, and of a directory into itself, fails; the tree stays.
//   - Rename follows rename(2): overwrite replaces a file by a file, an
//     empty directory by a directory; onto a full directory ErrNotEmpty (or
//     ErrExist); onto itself (with overwrite) succeeds and changes nothing.
//     Into a missing directory: ErrNotFound.
//   - Put fails when r gives fewer or more bytes than size; with AtomicPut
//     a failed Put leaves what was there (or nothing).
//   - Closing a reader early returns nil and leaves the backend usable.
//   - A call with an ended context fails within 2 s, matching
//     context.Canceled or context.DeadlineExceeded, and changes nothing.
//   - A Version stays while nothing changes; a same-size rewrite changes it
//     at once, or, for a StatVersion, once 2 s have passed.
//   - Put, Stat and List give the same ModTime; a file uploaded without an
//     mtime has one within 15 minutes of the local clock.
//   - An entry's Meta carries only the kinds the capabilities call stored
//     (Meta.Type "symlink" of a native link excepted). A stored mtime comes
//     back as ModTime (and Meta.MTime, if set), equal once both are
//     truncated to Precision; an mtime stored on Put only (OnPut, not
//     Stored) comes back as the ModTime of the content that Put stored.
//   - An overwrite keeps the mode and owner of the file it replaces and
//     drops its mtime, hash and type (they describe the old content); the
//     metadata the Put carries is stored anew. A Rename keeps all of it.
//   - SetMeta sets every stored kind, mtime, mode and owner of directories
//     too; with only kinds not stored it succeeds and changes nothing (an
//     mtime that is OnPut only included); with a stale ifVersion it fails
//     with ErrPrecondition whatever it carries.
//   - Capabilities: Precision only for MTime, and only where it is Stored
//     or OnPut; Quota means Used and Available are both known (>= 0).
//   - A symbolic link to a directory is not a directory; Remove and Rename
//     act on the link. Hasher of a directory fails.
//   - On a ReadOnly backend, changes fail with ErrReadOnly or
//     ErrPermission (ErrNotFound where the source is missing).
//   - Run never closes a backend: the opener registers that.
package backendtest
