package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
)

// cloudmountFSType is the file system type of cloudmount mounts in the
// kernel's mount table.
const cloudmountFSType = "fuse.cloudmount"

// mountinfoPath is the mount table clients read. Tests replace it.
var mountinfoPath = mountutil.MountinfoPath

// controlDialTimeout bounds the connect to a daemon's control socket.
const controlDialTimeout = 5 * time.Second

// mountEntry is one mount of the kernel's mount table.
type mountEntry struct {
	Mountpoint string
	FSType     string
	Source     string
	UID        int // user_id= of a FUSE mount: who mounted it; -1 if absent
}

// readMounts reads the mount table of this process.
func readMounts() ([]mountEntry, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseMounts(f)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return mounts, nil
}

// parseMounts parses a /proc/PID/mountinfo file: "ID PARENT MAJ:MIN ROOT
// MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
func parseMounts(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		m := mountEntry{Mountpoint: mountutil.UnescapeMountinfo(fields[4]), FSType: mountutil.UnescapeMountinfo(fields[sep+1]),
			Source: mountutil.UnescapeMountinfo(fields[sep+2]), UID: -1}
		if sep+3 < len(fields) {
			for _, o := range strings.Split(fields[sep+3], ",") {
				if v, ok := strings.CutPrefix(o, "user_id="); ok {
					if n, err := strconv.Atoi(v); err == nil {
						m.UID = n
					}
				}
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// mountRef is a cloudmount mount a client talks to.
type mountRef struct {
	Mountpoint string
	Source     string
	// UID is the user who mounted it (-1: unknown), whose socket
	// directories are searched besides the caller's.
	UID int
	// listed: the kernel lists it as a cloudmount mount.
	listed bool
}

// within returns the mount in mounts that contains the absolute path p
// (the deepest; of mounts stacked on one path, the last), and p relative to
// it.
func within(mounts []mountEntry, p string) (mountEntry, string, bool) {
	best, found := mountEntry{}, false
	for _, m := range mounts {
		if m.Mountpoint == p || m.Mountpoint == "/" || strings.HasPrefix(p, m.Mountpoint+"/") {
			if !found || len(m.Mountpoint) >= len(best.Mountpoint) {
				best, found = m, true
			}
		}
	}
	if !found {
		return mountEntry{}, "", false
	}
	rel := strings.Trim(strings.TrimPrefix(p, best.Mountpoint), "/")
	return best, rel, true
}

// cloudmountWithin returns the mount that contains the absolute path p if
// it is a cloudmount mount, and p relative to it.
func cloudmountWithin(mounts []mountEntry, p string) (mountRef, string, bool) {
	m, rel, ok := within(mounts, p)
	if !ok || m.FSType != cloudmountFSType {
		return mountRef{}, "", false
	}
	return mountRef{Mountpoint: m.Mountpoint, Source: m.Source, UID: m.UID, listed: true}, rel, true
}

// findMount returns the cloudmount mount that contains target (the current
// directory if target is ""), and target's path relative to the mount's
// root. A path the mount table does not show in a cloudmount mount is
// still served if a control socket exists for it or a parent of it (a mount
// made in another mount namespace).
func findMount(target string) (mountRef, string, error) {
	what := target
	if target == "" {
		wd, err := os.Getwd()
		if err != nil {
			return mountRef{}, "", fmt.Errorf("current directory: %w", err)
		}
		target, what = wd, "the current directory ("+wd+")"
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return mountRef{}, "", fmt.Errorf("%s: %w", target, err)
	}
	mounts, err := readMounts()
	if err != nil {
		return mountRef{}, "", err
	}
	tries := []string{abs}
	if c, err := canonicalMountpoint(abs); err == nil && c != abs {
		tries = append(tries, c)
	}
	for _, p := range tries {
		if ref, rel, ok := cloudmountWithin(mounts, p); ok {
			return ref, rel, nil
		}
	}
	// Resolving every symlink stats the path itself: only now, as it may
	// be inside a mount whose daemon hangs.
	if r, err := filepath.EvalSymlinks(abs); err == nil && !slices.Contains(tries, r) {
		tries = append(tries, r)
		if ref, rel, ok := cloudmountWithin(mounts, r); ok {
			return ref, rel, nil
		}
	}
	// Not in the mount table: look for a socket of the path or a parent.
	for _, p := range tries {
		for dir := p; ; dir = filepath.Dir(dir) {
			if _, ok := findSocketFile(dir, -1); ok {
				rel := strings.Trim(strings.TrimPrefix(p, dir), "/")
				return mountRef{Mountpoint: dir, UID: -1}, rel, nil
			}
			if dir == "/" {
				break
			}
		}
	}
	if target == what {
		return mountRef{}, "", fmt.Errorf("%s is not a cloudmount mount", target)
	}
	return mountRef{}, "", fmt.Errorf("%s is not in a cloudmount mount: name a MOUNTPOINT", what)
}

// userMounts returns the cloudmount mounts of the calling user (all of
// them for root), in mount table order.
func userMounts() ([]mountRef, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	me := os.Geteuid()
	var out []mountRef
	for _, m := range mounts {
		if m.FSType != cloudmountFSType || (me != 0 && m.UID >= 0 && m.UID != me) {
			continue
		}
		out = append(out, mountRef{Mountpoint: m.Mountpoint, Source: m.Source, UID: m.UID, listed: true})
	}
	return out, nil
}

// socketUIDs are the users whose socket directories may hold the socket
// of a mount made by uid (-1: unknown).
func socketUIDs(uid int) []int {
	me := os.Geteuid()
	if uid < 0 || uid == me {
		return []int{me}
	}
	return []int{uid, me}
}

// socketCandidate is a place where the control socket of a mount may be.
type socketCandidate struct {
	path string
	dir  string
	uid  int
}

// socketCandidates lists where the control socket of the mount at mp,
// made by uid, may be.
func socketCandidates(mp string, uid int) []socketCandidate {
	name := controlSocketName(mp)
	var out []socketCandidate
	seen := map[string]bool{}
	for _, u := range socketUIDs(uid) {
		for _, dir := range socketDirs(u) {
			if p := filepath.Join(dir, name); !seen[p] {
				seen[p] = true
				out = append(out, socketCandidate{path: p, dir: dir, uid: u})
			}
		}
	}
	return out
}

// findSocketFile reports the first existing control socket file of the
// mount at mp.
func findSocketFile(mp string, uid int) (string, bool) {
	for _, c := range socketCandidates(mp, uid) {
		if fi, err := os.Lstat(c.path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return c.path, true
		}
	}
	return "", false
}

// dialControl connects to the daemon of ref through its control socket,
// trying every place the socket may be.
func dialControl(ctx context.Context, ref mountRef) (net.Conn, error) {
	var (
		refused, denied, unsafe []string
		d                       = net.Dialer{Timeout: controlDialTimeout}
	)
	for _, c := range socketCandidates(ref.Mountpoint, ref.UID) {
		fi, err := os.Lstat(c.path)
		switch {
		case errors.Is(err, fs.ErrPermission):
			denied = append(denied, c.path)
			continue
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSocket == 0:
			unsafe = append(unsafe, fmt.Sprintf("%s is not a socket", c.path))
			continue
		}
		if err := checkSocketDir(c.dir, c.uid); err != nil {
			unsafe = append(unsafe, err.Error())
			continue
		}
		conn, err := d.DialContext(ctx, "unix", c.path)
		switch {
		case err == nil:
			return conn, nil
		case ctx.Err() != nil:
			return nil, context.Cause(ctx)
		case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
			denied = append(denied, c.path)
		default:
			refused = append(refused, c.path)
		}
	}
	mp := ref.Mountpoint
	switch {
	case len(denied) > 0:
		return nil, fmt.Errorf("no daemon answers for %s: permission denied on %s (the mount belongs to another user)", mp, strings.Join(denied, ", "))
	case len(refused) > 0:
		return nil, fmt.Errorf("no daemon answers for %s: its control socket %s refuses connections (its daemon has exited: see its log, and run cloudmount unmount %s)", mp, strings.Join(refused, ", "), mp)
	case len(unsafe) > 0:
		return nil, fmt.Errorf("no daemon answers for %s: %s", mp, strings.Join(unsafe, "; "))
	case ref.listed:
		return nil, fmt.Errorf("no daemon answers for %s: it has no control socket (is its daemon older than this command, or run by another user?)", mp)
	}
	return nil, fmt.Errorf("%s is not a cloudmount mount", mp)
}

// controlCall sends req to the daemon of ref and returns its result line,
// passing the progress lines before it to progress. The call ends with
// ctx; an error is one of the connection, while the daemon's own verdict
// is in the result's Error.
func controlCall(ctx context.Context, ref mountRef, req controlRequest, progress func(controlReply)) (controlReply, error) {
	conn, err := dialControl(ctx, ref)
	if err != nil {
		return controlReply{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return controlReply{}, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return controlReply{}, callError(ctx, ref, fmt.Errorf("send request: %w", err))
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var r controlReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return controlReply{}, fmt.Errorf("daemon of %s: malformed answer: %w", ref.Mountpoint, err)
		}
		if r.Type == replyResult {
			return r, nil
		}
		if progress != nil {
			progress(r)
		}
	}
	err = sc.Err()
	if err == nil {
		err = errors.New("the daemon closed the connection before answering (did it exit? see its log)")
	}
	return controlReply{}, callError(ctx, ref, err)
}

// callError names the mount in an error of a call, and prefers the
// context's reason (Ctrl-C, --timeout) to the broken connection it caused.
func callError(ctx context.Context, ref mountRef, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("daemon of %s: %w", ref.Mountpoint, err)
}
