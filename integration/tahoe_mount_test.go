package integration

// Mounting a directory of the Tahoe grid with the built binary.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	if o.Dir == "" {
		o.Dir = filepath.Join(tmp, "mnt")
		mkdirOwned(t, o.Dir, 0o755, nil)
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(tmp, "cache")
		mkdirOwned(t, o.CacheDir, 0o700, nil)
	}
	if o.Home == "" {
		o.Home = filepath.Join(tmp, "home")
		mkdirOwned(t, o.Home, 0o700, nil)
	}
	m := &Mount{Dir: o.Dir, CacheDir: o.CacheDir, LogFile: filepath.Join(tmp, "daemon.log"),
		Server: &Server{Kind: "tahoe", URL: o.Source},
		opts:   MountOptions{Foreground: o.Foreground, Dir: o.Dir, CacheDir: o.CacheDir}}
	rememberMountDir(m.Dir)
	t.Cleanup(func() { m.cleanup(t) })

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
	env := os.Environ()
	var kept []string
	for _, kv := range env {
		drop := false
		for _, k := range []string{"CLOUDMOUNT_PASSWORD=", "HOME=", "XDG_CONFIG_HOME=", "XDG_CACHE_HOME="} {
			drop = drop || strings.HasPrefix(kv, k)
		}
		if !drop {
			kept = append(kept, kv)
		}
	}
	m.env = append(kept, "HOME="+o.Home)
	cmdline := "cloudmount " + strings.Join(args, " ")

	if o.Foreground {
		logf, err := os.Create(m.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binPath, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = m.env, logf, logf
		if o.Stdin != nil {
			cmd.Stdin = bytes.NewReader(o.Stdin)
		}
		p, err := startProc("cloudmount -f", cmd)
		logf.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.fg, m.pid = p, p.pid()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, ok := mountedAt(m.Dir); ok {
				return m, "", nil
			}
			if p.exited() {
				return m, tailFile(m.LogFile, 40), fmt.Errorf("%s exited before mounting: %v", cmdline, p.waitErr)
			}
			if time.Now().After(deadline) {
				return m, tailFile(m.LogFile, 40), fmt.Errorf("%s did not mount within 60s", cmdline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	before := binaryProcs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = m.env
	if o.Stdin != nil {
		cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return m, string(out), fmt.Errorf("%s: %w", cmdline, err)
	}
	if _, ok := mountedAt(m.Dir); !ok {
		return m, string(out), fmt.Errorf("%s returned success but %s is not in /proc/self/mountinfo", cmdline, m.Dir)
	}
	if m.pid = m.findDaemon(before); m.pid == 0 {
		return m, string(out), fmt.Errorf("mounted, but no single daemon process of %s serves %s", binPath, m.Dir)
	}
	return m, string(out), nil
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
	if err == nil {
		t.Fatalf("the mount of %s succeeded, want a failure; output:\n%s", o.Source, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("the mount failed without a non-zero exit: %v", err)
	}
	if _, ok := mountedAt(m.Dir); ok {
		t.Errorf("the mount command failed but %s is mounted", m.Dir)
	}
	if n := len(daemonsOf(m.Dir)); n > 0 {
		t.Errorf("the mount command failed but %d daemon(s) of %s still run", n, m.Dir)
	}
	if strings.TrimSpace(out) == "" {
		t.Errorf("the mount failed with no message")
	}
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
