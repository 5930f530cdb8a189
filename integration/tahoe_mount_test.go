package integration

// Mounting a directory of the Tahoe grid with the built binary.

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tahoeMountOptions says how mountTahoe runs `cloudmount mount`. The zero
// value mounts tahoe:ALIAS of the test's directory with --node-dir of the
// grid's client, a fresh mountpoint and cache directory, -v, --log-file,
// and HOME set to an empty directory (so that no ~/.tahoe matters).
type tahoeMountOptions struct {
	// Source is the SOURCE argument; "": tahoe:ALIAS of the directory.
	Source string
	// NodeDir is --node-dir; "": the grid's client node; "-": none.
	NodeDir string
	// OForm uses the mount(8) form `cloudmount SOURCE MNT -o opts` for the
	// harness's settings (node_dir, cache_dir, log_file) and Opts.
	OForm bool
	// Opts are extra -o options (the OForm form only).
	Opts []string
	// Args are extra arguments after the harness's.
	Args []string
	// Stdin is the command's standard input (--capfile -).
	Stdin []byte
	// Foreground adds -f: the daemon is the child the harness started.
	Foreground bool
	// Dir and CacheDir are the mountpoint and cache directory; "": fresh.
	Dir, CacheDir string
	// Home is HOME; "": a fresh empty directory.
	Home string
}

// mountTahoe mounts d with the built binary; any failure fails the test.
// t.Cleanup unmounts it.
func mountTahoe(t *testing.T, d *tahoeDir, o tahoeMountOptions) *Mount {
	t.Helper()
	m, out, err := tryMountTahoe(t, d, o)
	if err != nil {
		t.Fatalf("%v\n%s\nclient node log (tail):\n%s", err, out, tailFile(d.g.Client.Log, 15))
	}
	return m
}

// tryMountTahoe runs the mount command and returns its output and, unless
// it ended with a mounted daemon, an error. t.Cleanup cleans up whatever
// it leaves behind.
func tryMountTahoe(t *testing.T, d *tahoeDir, o tahoeMountOptions) (*Mount, string, error) {
	t.Helper()
	needMountable(t)
	tmp := t.TempDir()
	if o.Source == "" {
		o.Source = "tahoe:" + d.Alias
	}
	if o.NodeDir == "" {
		o.NodeDir = d.g.Client.Dir
	}
	m := newHomeMount(t, tmp, &Server{Kind: "tahoe", URL: o.Source}, o.Foreground, &o.Dir, &o.CacheDir, &o.Home)

	settings := [][2]string{{"cache-dir", m.CacheDir}}
	if o.NodeDir != "-" {
		settings = append(settings, [2]string{"node-dir", o.NodeDir})
	}
	if !o.Foreground {
		settings = append(settings, [2]string{"log-file", m.LogFile})
	}
	var args []string
	if o.OForm {
		opts := o.Opts
		for _, s := range settings {
			opts = append(opts, strings.ReplaceAll(s[0], "-", "_")+"="+s[1])
		}
		args = []string{o.Source, m.Dir, "-o", strings.Join(opts, ",")}
	} else {
		args = []string{"mount", o.Source, m.Dir}
		for _, s := range settings {
			args = append(args, "--"+s[0], s[1])
		}
	}
	if o.Foreground {
		args = append(args, "-f")
	}
	args = append(append(args, "-v"), o.Args...)
	m.env = homeEnv(o.Home)
	cmd := exec.Command(binPath, args...)
	cmd.Env = m.env
	if o.Stdin != nil {
		cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	out, err := m.runMountCmd(t, cmd, "cloudmount "+strings.Join(args, " "))
	return m, out, err
}

// remountTahoe unmounts m with `cloudmount unmount` and mounts d again on
// the same mountpoint, with the same cache directory unless freshCache.
func remountTahoe(t *testing.T, d *tahoeDir, m *Mount, freshCache bool, o tahoeMountOptions) *Mount {
	t.Helper()
	m.Unmount(t, "cloudmount")
	o.Dir = m.Dir
	if !freshCache {
		o.CacheDir = m.CacheDir
	}
	return mountTahoe(t, d, o)
}

// wantTahoeMountFails runs a mount that must fail: non-zero exit, a
// message, nothing mounted, no daemon left. It returns the output.
func wantTahoeMountFails(t *testing.T, d *tahoeDir, o tahoeMountOptions) string {
	t.Helper()
	m, out, err := tryMountTahoe(t, d, o)
	checkMountFailed(t, m, out, err, "the mount of "+o.Source)
	return out
}

// closedLoopbackURL is a web-API URL on 127.0.0.1 where nothing listens.
func closedLoopbackURL(t testing.TB) string {
	t.Helper()
	p := closedPort(t)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d answers", p)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", p)
}
