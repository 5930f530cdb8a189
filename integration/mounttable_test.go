package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMountTableEntry: each mount is listed by mount(8) and in
// /proc/self/mountinfo as type fuse.cloudmount, with a source that names
// the server and the user (so that df, file managers and admins can tell
// what it is) and never the password, whichever way it was given.
func TestMountTableEntry(t *testing.T) {
	mountCmd := needTool(t, "mount")
	check := func(t *testing.T, m *Mount, wantSource, password string) {
		t.Helper()
		e, ok := mountedAt(m.Dir)
		if !ok || e.FSType != "fuse.cloudmount" || e.Source != wantSource {
			t.Errorf("mountinfo: %+v (mounted %v), want type fuse.cloudmount and source %s", e, ok, wantSource)
		}
		out, err := exec.Command(mountCmd).CombinedOutput()
		if err != nil {
			t.Fatalf("mount: %v\n%s", err, out)
		}
		if want := wantSource + " on " + m.Dir + " type fuse.cloudmount ("; !strings.Contains(string(out), want) {
			t.Errorf("mount(8) does not list %q", want)
		}
		if strings.Contains(string(out), password) || strings.Contains(e.Source+e.Options, password) {
			t.Error("the mount table shows the password")
		}
	}
	eachServer(t, func(t *testing.T, srv *Server) {
		withUser := strings.Replace(srv.URL, "://", "://"+srv.User+"@", 1)
		for _, c := range []struct {
			name string
			opts MountOptions
		}{
			{"secrets file, user from --user", MountOptions{}},
			{"CLOUDMOUNT_PASSWORD, user in the URL, -o form", MountOptions{Password: viaEnv, URL: withUser, OForm: true}},
		} {
			t.Run(c.name, func(t *testing.T) {
				check(t, mountServer(t, srv, c.opts), withUser, srv.Password)
			})
		}
	})
	t.Run("sftp", func(t *testing.T) {
		e := newSFTPEnv(t)
		srv := e.server(t)
		m := mountSFTP(t, e, srv, sftpMountOptions{Secret: e.Password, NoIdentity: true})
		check(t, m, e.sourceURL(srv, e.SSHD.Port), e.Password)
	})
}
