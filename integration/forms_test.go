package integration

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestMountForms mounts in each command-line form (mount command, the
// mount(8) form with -o, -f in the foreground) and ends each mount in each
// way (cloudmount unmount, fusermount3 -u, SIGTERM to a foreground daemon).
// Every mount must work, and every ending must leave nothing mounted and no
// daemon, with the data on the server.
func TestMountForms(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		for _, c := range []struct {
			name string
			opts MountOptions
			end  string // "cloudmount", "fusermount3" or "SIGTERM"
		}{
			{"mount, cloudmount unmount", MountOptions{}, "cloudmount"},
			{"mount, fusermount3 -u", MountOptions{}, "fusermount3"},
			{"-o form, cloudmount unmount", MountOptions{OForm: true}, "cloudmount"},
			{"-f, fusermount3 -u", MountOptions{Foreground: true}, "fusermount3"},
			{"-f, cloudmount unmount", MountOptions{Foreground: true}, "cloudmount"},
			{"-f, SIGTERM", MountOptions{Foreground: true}, "SIGTERM"},
		} {
			t.Run(c.name, func(t *testing.T) {
				m := mountServer(t, srv, c.opts)
				if e, _ := mountedAt(m.Dir); e.Source == "" || e.FSType == "" {
					t.Errorf("mount entry: %+v", e)
				}
				data := []byte("written through " + c.name + "\n")
				if err := os.WriteFile(m.Path(c.name), data, 0o644); err != nil {
					t.Fatal(err)
				}
				wantFile(t, m.Path(c.name), data)
				if c.end == "SIGTERM" {
					if err := syscall.Kill(m.PID(), syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
					if !m.waitDaemonExit(2 * time.Minute) {
						t.Fatalf("cloudmount -f still runs 2 minutes after SIGTERM")
					}
					if _, ok := mountedAt(m.Dir); ok {
						t.Errorf("%s is still mounted after the -f daemon ended on SIGTERM", m.Dir)
					}
				} else {
					m.Unmount(t, c.end)
				}
				wantServerFile(t, srv, c.name, data)
				ents, err := os.ReadDir(m.Dir)
				if err != nil || len(ents) != 0 {
					t.Errorf("the mountpoint after unmount: %v, %d entries", err, len(ents))
				}
			})
		}
	})
}
