package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPasswordNotExposed mounts with the password from a secrets file (in
// the background and with -f), from CLOUDMOUNT_PASSWORD and from a password
// command (-o password_command, with a space in the command's path), with
// the user from --user and from the URL, and checks that the password is in
// neither the daemon's command line nor its environment nor its log.
func TestPasswordNotExposed(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		withUser := strings.Replace(srv.URL, "://", "://"+srv.User+"@", 1)
		script := filepath.Join(t.TempDir(), "print password")
		if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' '"+srv.Password+"'\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			opts MountOptions
		}{
			{"secrets file", MountOptions{}},
			{"secrets file, -f", MountOptions{Foreground: true}},
			{"CLOUDMOUNT_PASSWORD", MountOptions{Password: viaEnv}},
			{"user in the URL, CLOUDMOUNT_PASSWORD", MountOptions{Password: viaEnv, URL: withUser}},
			{"password command", MountOptions{Password: viaNothing, Args: []string{"-o", `password_command="'` + script + `'"`}}},
			{"password command, -f", MountOptions{Password: viaNothing, Foreground: true, URL: withUser,
				Args: []string{"--password-command", `"` + script + `" --unused-argument`}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				m := mountServer(t, srv, c.opts)
				for _, f := range []string{"cmdline", "environ"} {
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", m.PID(), f))
					if err != nil {
						t.Fatal(err)
					}
					if strings.Contains(string(b), srv.Password) {
						t.Errorf("the password is in /proc/%d/%s: %q", m.PID(), f, strings.ReplaceAll(string(b), "\x00", " "))
					}
				}
				if e, _ := mountedAt(m.Dir); strings.Contains(e.Source+" "+e.Options, srv.Password) {
					t.Errorf("the password is in /proc/self/mountinfo: %+v", e)
				}
				// The mount works, so the password did arrive.
				if err := os.WriteFile(m.Path(c.name), []byte("ok"), 0o644); err != nil {
					t.Fatal(err)
				}
				wantServerFile(t, srv, c.name, []byte("ok"))
				if log, err := os.ReadFile(m.LogFile); err != nil || strings.Contains(string(log), srv.Password) {
					t.Errorf("the daemon log %s (%v) shows the password", m.LogFile, err)
				}
			})
		}
	})
}
